//! The directory's SQL, written once for both of its databases.
//!
//! Statements are written in SQLite's `?N` form; on PostgreSQL the same text runs with
//! `?N` read as `$N`. The schemas differ only where the databases do (see
//! `schema.sql` and `schema_pg.sql`): every integer is 64 bits on both, and flags are
//! integers (0 or 1) on both, so that values move between them unconverted (as
//! `berth registry migrate` moves them).

use std::borrow::Cow;

use berth_pg::postgres::types::{ToSql, Type};
use berth_pg::postgres::Transaction;
use rusqlite::types::ValueRef;

use crate::store::StoreError;

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Arg<'a> {
        Arg::Text(s)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Arg<'a> {
        Arg::Text(s)
    }
}

impl From<i64> for Arg<'_> {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

impl From<bool> for Arg<'_> {
    fn from(b: bool) -> Self {
        Arg::Int(b.into())
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Arg<'a> {
        v.map_or(Arg::Null, Into::into)
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(n) => n.into(),
            Arg::Text(s) => s.into(),
            Arg::Null => rusqlite::types::Null.into(),
        })
    }
}

/// A value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Text(String),
}

impl Val {
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Val::Null => Arg::Null,
            Val::Int(n) => Arg::Int(*n),
            Val::Text(s) => Arg::Text(s),
        }
    }
}

/// One row read back.
#[derive(Debug)]
pub(crate) struct Row(pub Vec<Val>);

impl Row {
    fn at(&self, i: usize) -> Result<&Val, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} missing")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Text(s) => Ok(Some(s.clone())),
            Val::Int(n) => Err(StoreError::Corrupt(format!(
                "column {i}: a number ({n}) where text belongs"
            ))),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i}: NULL where text belongs")))
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.at(i)? {
            Val::Int(n) => Ok(*n),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: {other:?} where a number belongs"
            ))),
        }
    }

    pub fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.int(i)? != 0)
    }
}

/// A transaction on either database.
pub(crate) enum Tx<'a, 'b> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(berth_pg::Db<'a, Transaction<'b>>),
}

impl Tx<'_, '_> {
    /// Runs a statement; how many rows it changed.
    pub fn exec(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<usize, StoreError> {
        match self {
            Tx::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))?),
            Tx::Postgres(db) => {
                let st = db.statement_as(sql, || dollars(sql))?;
                let n = db
                    .client()
                    .execute(&st, &pg_params(st.params(), args)?.refs())?;
                Ok(n as usize)
            }
        }
    }

    /// The rows a query returns.
    pub fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                    (0..n).map(|i| sqlite_val(r.get_ref(i)?)).collect()
                })?;
                Ok(rows.map(|r| r.map(Row)).collect::<Result<_, _>>()?)
            }
            Tx::Postgres(db) => {
                let st = db.statement_as(sql, || dollars(sql))?;
                let rows = db
                    .client()
                    .query(&st, &pg_params(st.params(), args)?.refs())?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row a query returns, if any.
    pub fn query_opt(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Runs SQL made at run time (a migration's per-table statements), not cached.
    pub fn exec_text(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<usize, StoreError> {
        match self {
            Tx::Sqlite(c) => Ok(c.execute(sql, rusqlite::params_from_iter(args))?),
            Tx::Postgres(db) => {
                let c = db.client();
                let st = c.prepare(&dollars(sql))?;
                Ok(c.execute(&st, &pg_params(st.params(), args)?.refs())? as usize)
            }
        }
    }

    /// The rows of SQL made at run time, not cached.
    pub fn query_text(&mut self, sql: &str) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(c) => {
                let mut st = c.prepare(sql)?;
                let n = st.column_count();
                let rows =
                    st.query_map([], |r| (0..n).map(|i| sqlite_val(r.get_ref(i)?)).collect())?;
                Ok(rows.map(|r| r.map(Row)).collect::<Result<_, _>>()?)
            }
            Tx::Postgres(db) => db.client().query(sql, &[])?.iter().map(pg_row).collect(),
        }
    }
}

/// `sql` with SQLite's numbered parameters (`?1`) as PostgreSQL writes them (`$1`).
/// The directory's statements have no `?` anywhere else.
pub(crate) fn dollars(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn sqlite_val(v: ValueRef<'_>) -> rusqlite::Result<Val> {
    Ok(match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(n) => Val::Int(n),
        ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Real(_) | ValueRef::Blob(_) => {
            return Err(rusqlite::Error::InvalidColumnType(
                0,
                "value".into(),
                v.data_type(),
            ))
        }
    })
}

fn pg_row(r: &berth_pg::postgres::Row) -> Result<Row, StoreError> {
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Val::Int)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(|n| Val::Int(n.into()))
        } else if *t == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?.map(|n| Val::Int(n.into()))
        } else if *t == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?.map(|b| Val::Int(b.into()))
        } else {
            r.try_get::<_, Option<String>>(i)?.map(Val::Text)
        };
        vals.push(v.unwrap_or(Val::Null));
    }
    Ok(Row(vals))
}

/// Parameters converted to the types PostgreSQL inferred for them (an integer in
/// `substr(x, 1, ?2)` is an `int4` there, a time an `int8`).
struct PgParams(Vec<Box<dyn ToSql + Sync>>);

impl PgParams {
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| b.as_ref()).collect()
    }
}

fn pg_params(types: &[Type], args: &[Arg<'_>]) -> Result<PgParams, StoreError> {
    let mut out: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(args.len());
    for (t, a) in types.iter().zip(args) {
        let too_big = |n: i64| StoreError::Corrupt(format!("{n} does not fit a {t} parameter"));
        out.push(match *a {
            Arg::Int(n) if *t == Type::INT4 => Box::new(i32::try_from(n).map_err(|_| too_big(n))?),
            Arg::Int(n) if *t == Type::INT2 => Box::new(i16::try_from(n).map_err(|_| too_big(n))?),
            Arg::Int(n) if *t == Type::BOOL => Box::new(n != 0),
            Arg::Int(n) => Box::new(n),
            Arg::Text(s) => Box::new(s.to_string()),
            Arg::Null if *t == Type::INT8 => Box::new(None::<i64>),
            Arg::Null if *t == Type::INT4 => Box::new(None::<i32>),
            Arg::Null => Box::new(None::<String>),
        });
    }
    Ok(PgParams(out))
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn numbered_parameters_become_dollars() {
        assert_eq!(
            dollars("SELECT a FROM t WHERE b = ?1 AND substr(c, 1, ?12) = ?2"),
            "SELECT a FROM t WHERE b = $1 AND substr(c, 1, $12) = $2"
        );
        assert_eq!(dollars("SELECT '?'"), "SELECT '?'");
    }
}
