//! The metadata backends the store's tests run on: SQLite in a temporary folder, and
//! PostgreSQL on a new database of the test process's throw-away cluster.

use std::path::Path;

use berth_store::{MetaStore, PgMeta, PgOptions, SqliteMeta};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store under test, and a way to change its rows behind its back (to set times).
pub struct Meta {
    meta: Box<dyn MetaStore>,
    raw: Box<dyn Fn(&str)>,
}

impl Meta {
    /// A new, empty store (SQLite's file under `dir`).
    pub fn open(backend: Backend, dir: &Path) -> Meta {
        match backend {
            Backend::Sqlite => {
                let path = dir.join("meta.db");
                Meta {
                    meta: Box::new(SqliteMeta::open(&path).unwrap()),
                    raw: Box::new(move |sql| {
                        rusqlite::Connection::open(&path)
                            .unwrap()
                            .execute_batch(sql)
                            .unwrap()
                    }),
                }
            }
            Backend::Postgres => {
                let url = berth_testenv::Postgres::shared().database();
                Meta {
                    meta: Box::new(PgMeta::connect(&url, &PgOptions::default()).unwrap()),
                    raw: Box::new(move |sql| {
                        ::postgres::Client::connect(&url, ::postgres::NoTls)
                            .unwrap()
                            .batch_execute(sql)
                            .unwrap()
                    }),
                }
            }
        }
    }

    /// Runs SQL that both databases take as it is.
    pub fn sql(&self, statement: &str) {
        (self.raw)(statement)
    }
}

impl std::ops::Deref for Meta {
    type Target = dyn MetaStore;
    fn deref(&self) -> &Self::Target {
        self.meta.as_ref()
    }
}

impl AsRef<dyn MetaStore> for Meta {
    fn as_ref(&self) -> &(dyn MetaStore + 'static) {
        self.meta.as_ref()
    }
}

/// `#[test]`s running each named check (a `fn(Backend)`) on each backend.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name($crate::common::Backend::Sqlite);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name($crate::common::Backend::Postgres);
            })*
        }
    };
}
