//! The frame of every page (head, header with the visitor's name or the sign-in
//! link), the sign-in form and the error pages.

use maud::{html, Markup, DOCTYPE};

use crate::format::query;

/// Who is looking and where: what the header shows.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in account, none when anonymous.
    pub user: Option<String>,
    /// The session's CSRF token (for the sign-out form), when signed in.
    pub csrf: Option<String>,
    /// This page's local path and query, where sign-in comes back to.
    pub here: String,
}

/// A whole page: `title` (none: just `berth`) and the content of `<main>`.
pub(crate) fn page(chrome: &Chrome, title: Option<&str>, body: Markup) -> String {
    let full = match title {
        Some(t) => format!("{t} · berth"),
        None => "berth".to_string(),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (full) }
                link rel="stylesheet" href="/static/berth.css";
                script src="/static/berth.js" defer {}
            }
            body {
                (header(chrome))
                main #main { (body) }
            }
        }
    }
    .into_string()
}

fn header(chrome: &Chrome) -> Markup {
    html! {
        header {
            a #home href="/" { "berth" }
            nav.account aria-label="Account" {
                @match (&chrome.user, &chrome.csrf) {
                    (Some(user), Some(csrf)) => {
                        span #user { (user) }
                        form #signout method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                    _ => {
                        a #signin-link href={ "/signin" (query(&[("next", &chrome.here)])) } { "Sign in" }
                    }
                }
            }
        }
    }
}

/// What the sign-in page shows.
#[derive(Debug, Clone, Default)]
pub struct SigninForm {
    /// The double-submit token (the same value as the `berth_csrf` cookie).
    pub csrf: String,
    /// Where to go after signing in (a local path; checked again when posted).
    pub next: String,
    /// The user name typed before, shown again after a failure.
    pub username: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
}

/// `/signin`.
pub fn signin(chrome: &Chrome, form: &SigninForm) -> String {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(e) = &form.error {
            p #error role="alert" { (e) }
        }
        form #signin method="post" action="/signin" {
            input type="hidden" name="csrf" value=(form.csrf);
            input type="hidden" name="next" value=(form.next);
            p {
                label for="username" { "User name" }
                input #username name="username" type="text" autocomplete="username"
                    required value=(form.username);
            }
            p {
                label for="password" { "Password" }
                input #password name="password" type="password"
                    autocomplete="current-password" required;
            }
            p { button type="submit" { "Sign in" } }
        }
        p.hint { "The same accounts as " code { "podman login" } " to this registry." }
    };
    page(chrome, Some("Sign in"), body)
}

/// The 404 page: the same for what does not exist and what the visitor may not
/// see, and it names nothing that was asked for.
pub fn not_found(chrome: &Chrome) -> String {
    let chrome = Chrome {
        here: "/".into(),
        ..chrome.clone()
    };
    let body = html! {
        h1 { "Not found" }
        p { "There is nothing at this address that you may see." }
        p { a href="/" { "Search the images" } }
    };
    page(&chrome, Some("Not found"), body)
}

/// Any other refusal or failure: a heading and the reason in `#error`.
pub fn error_page(chrome: &Chrome, title: &str, message: &str) -> String {
    let body = html! {
        h1 { (title) }
        p #error role="alert" { (message) }
        p { a href="/" { "Search the images" } }
    };
    page(chrome, Some(title), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_shows_the_sign_in_link_or_the_user_and_sign_out() {
        let anon = Chrome {
            here: "/repository/a/b?tag=1".into(),
            ..Default::default()
        };
        let html = not_found(&anon);
        assert!(html.contains("<title>Not found · berth</title>"), "{html}");
        assert!(
            !html.contains("a/b"),
            "a 404 names nothing asked for: {html}"
        );
        let html = error_page(&anon, "Forbidden", "x");
        assert!(
            html.contains(
                r#"id="signin-link" href="/signin?next=%2Frepository%2Fa%2Fb%3Ftag%3D1""#
            ),
            "{html}"
        );
        let user = Chrome {
            user: Some("<b>alice</b>".into()),
            csrf: Some("tok".into()),
            here: "/".into(),
        };
        let html = error_page(&user, "Forbidden", "x");
        assert!(
            html.contains(r#"<span id="user">&lt;b&gt;alice&lt;/b&gt;</span>"#),
            "{html}"
        );
        assert!(html.contains(r#"name="csrf" value="tok""#), "{html}");
        assert!(!html.contains("signin-link"));
    }

    #[test]
    fn signin_form_carries_its_tokens_and_escapes_what_was_typed() {
        let html = signin(
            &Chrome::default(),
            &SigninForm {
                csrf: "c1".into(),
                next: "/x".into(),
                username: "\"><script>".into(),
                error: Some("Wrong user name or password".into()),
            },
        );
        assert!(html.contains(r#"<p id="error" role="alert">Wrong user name or password</p>"#));
        assert!(html.contains(r#"name="csrf" value="c1""#));
        assert!(html.contains(r#"name="next" value="/x""#));
        assert!(!html.contains("\"><script>"), "{html}");
        assert!(html.contains(r#"type="password""#));
    }
}
