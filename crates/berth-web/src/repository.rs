//! `/repository/NAME`: the description, pull commands and the tags, newest first
//! (the catalog's semver-aware order), each with its digest, size, platforms, grade,
//! critical/high counts, whether it is signed and when it was pushed.

use berth_catalog::query::{RepositoryView, TagSummary};
use maud::{html, Markup};

use crate::format::{day, rfc3339, short_digest, size};
use crate::layout::{page, Chrome};
use crate::search::grade_badge;

/// A command and the copy button after it (`<code class="pull" id=ID>`).
pub(crate) fn command(id: &str, text: &str) -> Markup {
    html! {
        div.command {
            code.pull id=(id) { (text) }
            " "
            button.copy type="button" data-copy=(text) { "Copy" }
        }
    }
}

/// The tag pull commands suggest: `latest` when there is one, else the newest.
fn suggested_tag(tags: &[TagSummary]) -> Option<&str> {
    tags.iter()
        .find(|t| t.tag == "latest")
        .or(tags.first())
        .map(|t| t.tag.as_str())
}

/// `/repository/NAME`; `host` is how clients reach this registry (`HOST[:PORT]`).
pub fn page_html(chrome: &Chrome, host: &str, view: &RepositoryView) -> String {
    let name = &view.name;
    let body = html! {
        h1 { (name) }
        @if let Some(d) = &view.description {
            p #description { (d) }
        } @else {
            p #description.none { "No description" }
        }
        section #pull {
            h2 { "Pull" }
            @if let Some(tag) = suggested_tag(&view.tags) {
                (command("pull-podman", &format!("podman pull {host}/{name}:{tag}")))
                (command("pull-docker", &format!("docker pull {host}/{name}:{tag}")))
            } @else {
                p { "This repository has no tags." }
            }
        }
        section #tags-section {
            h2 { "Tags" }
            (tags_table(name, &view.tags))
        }
    };
    page(chrome, Some(name), body)
}

/// `<table id="tags">`: shared by the repository page and the image's Tags tab.
pub(crate) fn tags_table(repo: &str, tags: &[TagSummary]) -> Markup {
    html! {
        div.table-wrap {
            table #tags {
                thead {
                    tr {
                        th scope="col" { "Tag" }
                        th scope="col" { "Digest" }
                        th scope="col" { "Size" }
                        th scope="col" { "Platforms" }
                        th scope="col" { "Grade" }
                        th scope="col" { abbr title="Critical / high findings" { "Crit./high" } }
                        th scope="col" { "Signed" }
                        th scope="col" { "Pushed" }
                    }
                }
                tbody {
                    @for t in tags {
                        tr.tag data-tag=(t.tag) {
                            td { a href={ "/repository/" (repo) "/manifest/" (t.digest) } { (t.tag) } }
                            td { code title=(t.digest) { (short_digest(&t.digest)) } }
                            td { (size(t.images.iter().map(|i| i.size).sum())) }
                            td {
                                @for (i, img) in t.images.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (img.platform.as_deref().unwrap_or("unknown"))
                                }
                            }
                            td { (grade_badge(t.grade.as_deref())) }
                            td.counts {
                                span.critical title="Critical" { (t.critical) }
                                " / "
                                span.high title="High" { (t.high) }
                            }
                            td { @if t.signed { "Signed" } @else { "—" } }
                            td { time datetime=(rfc3339(t.pushed_at)) { (day(t.pushed_at)) } }
                        }
                    }
                }
            }
        }
        @if tags.is_empty() {
            p.none { "No tags." }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use berth_catalog::query::ImageSummary;

    pub(crate) fn tag(name: &str, digest: &str, pushed_at: i64) -> TagSummary {
        TagSummary {
            tag: name.into(),
            digest: digest.into(),
            pushed_at,
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            images: vec![ImageSummary {
                digest: digest.into(),
                platform: Some("linux/amd64".into()),
                created: Some("2024-02-03T04:05:06Z".into()),
                size: 3 * 1024 * 1024,
                status: "ok".into(),
                error: None,
                grade: Some("C".into()),
                critical: 1,
                high: 2,
            }],
            grade: Some("C".into()),
            critical: 1,
            high: 2,
            signed: name == "1.10.0",
        }
    }

    #[test]
    fn repository_page_lists_tags_in_the_given_order_with_pull_commands() {
        let view = RepositoryView {
            name: "team/app".into(),
            description: Some("an <app>".into()),
            tags: vec![
                tag("1.10.0", "sha256:aaaaaaaaaaaaaaaaaaaa", 3),
                tag("1.9.2", "sha256:bbbbbbbbbbbbbbbbbbbb", 9),
            ],
        };
        let html = page_html(&Chrome::default(), "reg.example:5000", &view);
        assert!(html.contains("<title>team/app · berth</title>"));
        assert!(html.contains("<h1>team/app</h1>"));
        assert!(html.contains(r#"<p id="description">an &lt;app&gt;</p>"#));
        assert!(html.contains(
            r#"<code class="pull" id="pull-podman">podman pull reg.example:5000/team/app:1.10.0</code>"#
        ), "{html}");
        let first = html.find(r#"data-tag="1.10.0""#).unwrap();
        let second = html.find(r#"data-tag="1.9.2""#).unwrap();
        assert!(first < second);
        assert!(html.contains(
            r#"href="/repository/team/app/manifest/sha256:aaaaaaaaaaaaaaaaaaaa">1.10.0</a>"#
        ));
        assert!(html.contains("<td>Signed</td>") && html.contains("<td>—</td>"));
        assert!(html.contains("3.0 MiB"));
        assert!(html.contains(r#"<span class="grade grade-C""#));
    }
}
