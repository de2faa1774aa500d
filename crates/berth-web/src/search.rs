//! `/`: the search form, facets (OS, architecture, grade, signed) with counts over
//! what the visitor may read, and one page of results.

use berth_catalog::search::SearchPage;
use maud::{html, Markup};

use crate::format::{query, rfc3339};
use crate::layout::{page, Chrome};

/// The query as the page's URL carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchParams {
    pub q: String,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub grade: Option<String>,
    /// `signed=yes|no`.
    pub signed: Option<bool>,
    pub package: Option<String>,
    pub cve: Option<String>,
    /// 1-based.
    pub page: usize,
}

/// The facets the page offers, in this order.
pub const FACETS: [(&str, &str); 4] = [
    ("os", "Operating system"),
    ("arch", "Architecture"),
    ("grade", "Health grade"),
    ("signed", "Signed"),
];

impl SearchParams {
    /// The selected value of facet `name`.
    pub fn facet(&self, name: &str) -> Option<String> {
        match name {
            "os" => self.os.clone(),
            "arch" => self.arch.clone(),
            "grade" => self.grade.clone(),
            "signed" => self
                .signed
                .map(|s| if s { "yes" } else { "no" }.to_string()),
            _ => None,
        }
    }

    fn with_facet(&self, name: &str, value: Option<&str>) -> SearchParams {
        let mut p = self.clone();
        let v = value.map(String::from);
        match name {
            "os" => p.os = v,
            "arch" => p.arch = v,
            "grade" => p.grade = v,
            "signed" => p.signed = value.map(|v| v == "yes"),
            _ => {}
        }
        p.page = 1;
        p
    }

    /// This query as a local URL (`/?q=…&os=…`).
    pub fn url(&self) -> String {
        let signed = self.facet("signed").unwrap_or_default();
        let page = if self.page > 1 {
            self.page.to_string()
        } else {
            String::new()
        };
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let (os, arch, grade, package, cve) = (
            o(&self.os),
            o(&self.arch),
            o(&self.grade),
            o(&self.package),
            o(&self.cve),
        );
        format!(
            "/{}",
            query(&[
                ("q", &self.q),
                ("os", &os),
                ("arch", &arch),
                ("grade", &grade),
                ("signed", &signed),
                ("package", &package),
                ("cve", &cve),
                ("page", &page),
            ])
        )
    }
}

/// One facet's values and how many readable repositories each would leave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facet {
    /// `os`, `arch`, `grade` or `signed` (values `yes`/`no`).
    pub name: String,
    pub values: Vec<(String, usize)>,
}

/// The worst of some grade letters (`Unknown` only when nothing else is known).
pub(crate) fn worst_grade(grades: &[String]) -> Option<&str> {
    let mut worst: Option<&str> = None;
    for g in grades.iter().map(String::as_str) {
        worst = Some(match worst {
            None | Some("Unknown") => g,
            Some(w) if g != "Unknown" && g > w => g,
            Some(w) => w,
        });
    }
    worst
}

/// The grade badge.
pub(crate) fn grade_badge(grade: Option<&str>) -> Markup {
    html! {
        @if let Some(g) = grade {
            span class={ "grade grade-" (g) } title={ "Health grade " (g) } { (g) }
        } @else {
            span.grade.grade-none title="No health grade yet" { "—" }
        }
    }
}

/// `/`.
pub fn page_html(
    chrome: &Chrome,
    params: &SearchParams,
    found: &SearchPage,
    facets: &[Facet],
) -> String {
    let total = match found.total {
        0 => "No repositories found".to_string(),
        1 => "1 repository".to_string(),
        n => format!("{n} repositories"),
    };
    let body = html! {
        h1 { "Images" }
        form #search method="get" action="/" role="search" {
            label for="q" { "Search images" }
            input #q name="q" type="search" value=(params.q)
                placeholder="name, description, package or CVE";
            @for (k, v) in [("os", &params.os), ("arch", &params.arch), ("grade", &params.grade),
                            ("package", &params.package), ("cve", &params.cve)] {
                @if let Some(v) = v {
                    input type="hidden" name=(k) value=(v);
                }
            }
            @if let Some(s) = params.facet("signed") {
                input type="hidden" name="signed" value=(s);
            }
            button type="submit" { "Search" }
        }
        div.search-layout {
            nav #facets aria-label="Filters" {
                h2 { "Filters" }
                @for (name, label) in FACETS {
                    (facet(params, name, label, facets.iter().find(|f| f.name == name)))
                }
            }
            div.results {
                p #total { (total) }
                ol #results {
                    @for hit in &found.results {
                        li.result data-repository=(hit.repository) {
                            h2 { a.name href={ "/repository/" (hit.repository) } { (hit.repository) } }
                            @if let Some(d) = &hit.description {
                                p.description { (d) }
                            } @else {
                                p.description.none { "No description" }
                            }
                            p.meta {
                                (grade_badge(worst_grade(&hit.grades)))
                                @if let Some(t) = hit.last_pushed {
                                    " "
                                    time.pushed datetime=(rfc3339(t)) { "pushed " (crate::format::day(t)) }
                                }
                                @for p in &hit.platforms {
                                    " " span.platform { (p) }
                                }
                                @if hit.signed {
                                    " " span.signed { "Signed" }
                                }
                            }
                        }
                    }
                }
                (crate::pager::nav(found.total, found.per_page, found.page, |n| {
                    SearchParams { page: n, ..params.clone() }.url()
                }))
            }
        }
    };
    page(chrome, None, body)
}

fn facet(params: &SearchParams, name: &str, label: &str, values: Option<&Facet>) -> Markup {
    let selected = params.facet(name);
    html! {
        section.facet data-facet=(name) {
            h3 { (label) }
            ul {
                @for (value, count) in values.map(|f| f.values.as_slice()).unwrap_or_default() {
                    @let on = selected.as_deref() == Some(value.as_str());
                    @let link = params.with_facet(name, if on { None } else { Some(value.as_str()) }).url();
                    li {
                        @if on {
                            a.facet-value data-value=(value) href=(link) aria-current="true" {
                                (value) " " span.count { (count) }
                            }
                        } @else {
                            a.facet-value data-value=(value) href=(link) {
                                (value) " " span.count { (count) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_catalog::search::SearchHit;

    fn hit(name: &str, description: &str) -> SearchHit {
        SearchHit {
            repository: name.into(),
            description: Some(description.into()),
            platforms: vec!["linux/amd64".into()],
            grades: vec!["B".into(), "Unknown".into(), "D".into()],
            name_match: false,
            last_pushed: Some(1_706_933_106),
            signed: true,
        }
    }

    fn found(results: Vec<SearchHit>, total: usize, page: usize) -> SearchPage {
        SearchPage {
            total,
            page,
            per_page: 25,
            results,
            facets: Default::default(),
        }
    }

    #[test]
    fn results_facets_and_pager() {
        let params = SearchParams {
            q: "app".into(),
            os: Some("linux".into()),
            page: 2,
            ..Default::default()
        };
        let facets = vec![
            Facet {
                name: "os".into(),
                values: vec![("linux".into(), 3), ("windows".into(), 1)],
            },
            Facet {
                name: "signed".into(),
                values: vec![("yes".into(), 2)],
            },
        ];
        let html = page_html(
            &Chrome::default(),
            &params,
            &found(vec![hit("team/app", "<script>alert(1)</script>")], 60, 2),
            &facets,
        );
        assert!(
            html.contains(r#"<li class="result" data-repository="team/app">"#),
            "{html}"
        );
        assert!(html.contains(r#"<a class="name" href="/repository/team/app">team/app</a>"#));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains(r#"<span class="grade grade-D" title="Health grade D">D</span>"#));
        assert!(html.contains(r#"<time class="pushed" datetime="2024-02-03T04:05:06Z">"#));
        assert!(html.contains(r#"<span class="signed">Signed</span>"#));
        assert!(html.contains(r#"<p id="total">60 repositories</p>"#));
        // The selected value removes itself; another replaces it; both go to page 1.
        assert!(
            html.contains(r#"data-value="linux" href="/?q=app" aria-current="true""#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-value="windows" href="/?q=app&amp;os=windows""#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-value="yes" href="/?q=app&amp;os=linux&amp;signed=yes""#),
            "{html}"
        );
        assert!(html.contains(r#"<span class="count">3</span>"#));
        for f in ["os", "arch", "grade", "signed"] {
            assert!(html.contains(&format!(r#"data-facet="{f}""#)), "{f}");
        }
        assert!(
            html.contains(r#"rel="prev" href="/?q=app&amp;os=linux""#),
            "{html}"
        );
        assert!(
            html.contains(r#"rel="next" href="/?q=app&amp;os=linux&amp;page=3""#),
            "{html}"
        );
    }

    #[test]
    fn totals_read_as_sentences() {
        let p = SearchParams::default();
        let one = page_html(
            &Chrome::default(),
            &p,
            &found(vec![hit("a", "")], 1, 1),
            &[],
        );
        assert!(one.contains(r#"<p id="total">1 repository</p>"#));
        let none = page_html(&Chrome::default(), &p, &found(vec![], 0, 1), &[]);
        assert!(none.contains(r#"<p id="total">No repositories found</p>"#));
        assert!(none.contains(r#"<ol id="results"></ol>"#));
    }

    #[test]
    fn worst_grade_ignores_unknown_unless_alone() {
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(worst_grade(&g(&["A", "C", "B"])), Some("C"));
        assert_eq!(worst_grade(&g(&["Unknown", "B"])), Some("B"));
        assert_eq!(worst_grade(&g(&["Unknown"])), Some("Unknown"));
        assert_eq!(worst_grade(&[]), None);
    }
}
