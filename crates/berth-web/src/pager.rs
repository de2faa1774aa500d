//! Paging of long lists: a page shows at most [`PER_PAGE`] rows, so a 5,000-package
//! image renders as fast as a 50-package one.

use maud::{html, Markup};

/// Rows per page of every long table.
pub const PER_PAGE: usize = 100;

/// The 1-based page `page` of `total` rows clamped to what exists, and the range of
/// rows it shows.
pub(crate) fn window(total: usize, page: usize) -> (usize, std::ops::Range<usize>) {
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let start = (page - 1) * PER_PAGE;
    (page, start..(start + PER_PAGE).min(total))
}

/// `<nav class="pager">` with `rel="prev"`/`rel="next"` links; `link(n)` is the URL
/// of page `n`. Nothing when everything fits on one page.
pub(crate) fn nav(
    total: usize,
    per_page: usize,
    page: usize,
    link: impl Fn(usize) -> String,
) -> Markup {
    let pages = total.div_ceil(per_page.max(1)).max(1);
    if pages <= 1 {
        return html! {};
    }
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 {
                a rel="prev" href=(link(page - 1)) { "← Previous" }
            }
            span.page-of { "Page " (page) " of " (pages) }
            @if page < pages {
                a rel="next" href=(link(page + 1)) { "Next →" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_clamp_and_pager_links_follow() {
        assert_eq!(window(0, 1), (1, 0..0));
        assert_eq!(window(250, 1), (1, 0..100));
        assert_eq!(window(250, 3), (3, 200..250));
        assert_eq!(window(250, 9), (3, 200..250));
        assert_eq!(window(250, 0), (1, 0..100));
        assert_eq!(nav(100, 100, 1, |n| format!("?page={n}")).into_string(), "");
        let middle = nav(250, 100, 2, |n| format!("?page={n}")).into_string();
        assert!(middle.contains(r#"rel="prev" href="?page=1""#), "{middle}");
        assert!(middle.contains(r#"rel="next" href="?page=3""#), "{middle}");
        let last = nav(250, 100, 3, |n| format!("?page={n}")).into_string();
        assert!(!last.contains("rel=\"next\""), "{last}");
    }
}
