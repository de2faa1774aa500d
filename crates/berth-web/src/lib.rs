//! berth's web pages, rendered on the server: pure functions from catalog data (the
//! same `berth_catalog` values the JSON API answers with) to HTML strings, and the
//! one stylesheet and one script they use, embedded in the binary.
//!
//! No HTTP and no access control here: the registry's `ui` module decides who may
//! see what, fetches it, and hands it to these functions. Keeping the pages pure makes
//! them testable without a server and measurable on their own (`cargo bench -p
//! berth-web --bench render`).
//!
//! Templates are `maud` macros: checked when compiled, and every value spliced in is
//! HTML-escaped unless wrapped in `PreEscaped`, which is used only for text written
//! here (never for names, labels, package names or anything else from an image).
//!
//! The page structure (ids, classes, URLs) is a contract with the browser tests:
//! `/work/notes/ui-contract.md` in the project's notes, summarized in ARCHITECTURE.md.

pub mod assets;
#[doc(hidden)]
pub mod fixture;
mod format;
pub mod image;
mod layout;
mod pager;
pub mod repository;
pub mod search;

pub use layout::{error_page, not_found, signin, Chrome, SigninForm};
pub use pager::PER_PAGE;
