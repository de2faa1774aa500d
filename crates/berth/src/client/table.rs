//! Tables as the podman-style commands print them (`images`, `history`, `search`):
//! Go's `tabwriter` as podman sets it up, cells at least 12 wide with two spaces of
//! padding, the last cell of a row unpadded so no line ends in spaces. One printer for
//! every table keeps their layouts the same.

/// Podman's `tabwriter` minimum cell width, padding included.
const MIN_WIDTH: usize = 12;
const PADDING: usize = 2;

/// Lays `rows` (the first is the header) out as aligned lines, each ending in `\n`.
/// Rows may have fewer cells than others (a `--format` template may print fewer).
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let longest = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0);
            (longest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, v) in row.iter().enumerate() {
            out.push_str(v);
            if c + 1 < row.len() {
                out.extend(std::iter::repeat_n(' ', widths[c] - v.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// A cell cut as podman cuts long ones: at most `width` characters, the last three
/// `...` when it was longer.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(3)).collect();
    format!("{kept}...")
}

#[cfg(test)]
mod tests {
    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|row| row.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    /// As `podman images` printed it (4.3.1, measured).
    #[test]
    fn pads_like_podman() {
        assert_eq!(
            super::render(&rows(&[
                &["REPOSITORY", "TAG", "SIZE"],
                &["localhost/t1", "v1", "3.54 kB"],
            ])),
            "REPOSITORY    TAG         SIZE\nlocalhost/t1  v1          3.54 kB\n"
        );
    }

    #[test]
    fn cells_cut_as_podman_cuts_them() {
        assert_eq!(
            super::truncate("/bin/sh -c echo data", 20),
            "/bin/sh -c echo data"
        );
        assert_eq!(
            super::truncate("/bin/sh -c echo data!", 20),
            "/bin/sh -c echo d..."
        );
        assert_eq!(
            super::truncate(
                "/bin/sh -c #(nop) ADD file:b72778351dbfb68bc0c38aa9f7f93f950b97f608cc1c232f3a01f10a23f251e3 in /",
                45
            ),
            "/bin/sh -c #(nop) ADD file:b72778351dbfb68..."
        );
    }

    #[test]
    fn short_rows_and_no_trailing_spaces() {
        let out = super::render(&rows(&[&["NAME", "TAG"], &["a"]]));
        assert_eq!(out, "NAME        TAG\na\n");
    }
}
