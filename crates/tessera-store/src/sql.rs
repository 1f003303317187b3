//! A small dialect-neutral statement layer over sqlx, so that one body of store code (see
//! `ops.rs`) serves SQLite and PostgreSQL.
//!
//! Statements use `$1`-style placeholders, which both databases accept. Values are bound from
//! four kinds ([`Value`]), the only ones the schema uses: 64-bit integers (instants are
//! microseconds since the epoch, durations seconds), text, booleans and byte strings.

use std::borrow::Cow;

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Database, Encode, Row, Type};

/// Which SQL dialect a connection speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The scalar "larger of two values" function: `MAX(a, b)` / `GREATEST(a, b)`.
    pub fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MAX",
            Dialect::Postgres => "GREATEST",
        }
    }
}

/// A bound parameter.
#[derive(Debug, Clone)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Bytes(Option<Vec<u8>>),
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr;)*) => {
        $(impl From<$t> for Value {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

value_from! {
    i64 => |v| Value::Int(Some(v));
    Option<i64> => |v| Value::Int(v);
    bool => |v| Value::Bool(v);
    &str => |v| Value::Text(Some(v.to_owned()));
    String => |v| Value::Text(Some(v));
    &String => |v| Value::Text(Some(v.clone()));
    Option<String> => |v| Value::Text(v);
    &Option<String> => |v| Value::Text(v.clone());
    Option<&str> => |v| Value::Text(v.map(str::to_owned));
    &[u8] => |v| Value::Bytes(Some(v.to_vec()));
    Vec<u8> => |v| Value::Bytes(Some(v));
    &Vec<u8> => |v| Value::Bytes(Some(v.clone()));
    Option<&[u8]> => |v| Value::Bytes(v.map(<[u8]>::to_vec));
}

/// SQL text and its parameters, in placeholder order.
#[derive(Debug, Clone)]
pub struct Stmt {
    sql: Cow<'static, str>,
    args: Vec<Value>,
    /// Every placeholder appears once, numbered in order (see [`Stmt::values_list`]).
    sequential: bool,
}

/// A statement with no parameters bound yet.
pub fn stmt(sql: impl Into<Cow<'static, str>>) -> Stmt {
    Stmt { sql: sql.into(), args: Vec::new(), sequential: false }
}

impl Stmt {
    pub fn bind(mut self, v: impl Into<Value>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Appends `rows` tuples of `width` placeholders (`($n, $n+1, …), (…)`), numbered after
    /// the parameters bound so far, for a multi-row `VALUES` list. The statement must have no
    /// other placeholders after it, and none used twice before it.
    pub fn values_list(mut self, rows: usize, width: usize) -> Self {
        self.sequential = !self.sql.contains('$');
        let mut sql = self.sql.into_owned();
        let mut n = self.args.len();
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..width {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        self.sql = sql.into();
        self
    }
}

fn bind_all<'q, DB: Database>(
    mut q: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    args: Vec<Value>,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    for arg in args {
        q = match arg {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
            Value::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// Typed access to the columns of a result row, whatever the database.
pub trait Cols {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
                self.try_get(col)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}

impl_cols!(SqliteRow);
impl_cols!(PgRow);

/// A borrowed connection of either database.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    /// SQLite looks a numbered placeholder's number up by a linear scan, so a multi-row INSERT
    /// with `$n` placeholders costs O(n²) to bind; sequential statements use `?` there.
    fn prepare(&self, s: Stmt) -> (Cow<'static, str>, Vec<Value>) {
        match self {
            Conn::Sqlite(_) if s.sequential => (anonymous_placeholders(&s.sql).into(), s.args),
            _ => (s.sql, s.args),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn exec(&mut self, s: Stmt) -> Result<u64, sqlx::Error> {
        let (sql, args) = self.prepare(s);
        Ok(match self {
            Conn::Sqlite(c) => bind_all(sqlx::query(&sql), args).execute(&mut **c).await?.rows_affected(),
            Conn::Postgres(c) => bind_all(sqlx::query(&sql), args).execute(&mut **c).await?.rows_affected(),
        })
    }

    /// Runs a query and decodes every row with `decode`.
    pub async fn all<T, E: From<sqlx::Error>>(
        &mut self,
        s: Stmt,
        decode: impl Fn(&dyn Cols) -> Result<T, E>,
    ) -> Result<Vec<T>, E> {
        let (sql, args) = self.prepare(s);
        match self {
            Conn::Sqlite(c) => {
                let rows = bind_all(sqlx::query(&sql), args).fetch_all(&mut **c).await?;
                rows.iter().map(|r| decode(r)).collect()
            }
            Conn::Postgres(c) => {
                let rows = bind_all(sqlx::query(&sql), args).fetch_all(&mut **c).await?;
                rows.iter().map(|r| decode(r)).collect()
            }
        }
    }

    /// Runs a query that returns at most one row.
    pub async fn optional<T, E: From<sqlx::Error>>(
        &mut self,
        s: Stmt,
        decode: impl Fn(&dyn Cols) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        let (sql, args) = self.prepare(s);
        match self {
            Conn::Sqlite(c) => {
                let row = bind_all(sqlx::query(&sql), args).fetch_optional(&mut **c).await?;
                row.as_ref().map(|r| decode(r)).transpose()
            }
            Conn::Postgres(c) => {
                let row = bind_all(sqlx::query(&sql), args).fetch_optional(&mut **c).await?;
                row.as_ref().map(|r| decode(r)).transpose()
            }
        }
    }
}

/// `$1, $2` → `?, ?` (for statements whose placeholders are sequential).
fn anonymous_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_placeholders_become_anonymous() {
        assert_eq!(anonymous_placeholders("VALUES ($1, $2), ($3, $10)"), "VALUES (?, ?), (?, ?)");
        assert!(stmt("INSERT INTO t VALUES ").values_list(2, 2).sequential);
        assert!(!stmt("UPDATE t SET a = $1 WHERE b = $1").sequential);
    }

    #[test]
    fn values_list_numbers_placeholders_after_earlier_binds() {
        let s = stmt("INSERT INTO t (a, b) VALUES ").bind(1i64).values_list(2, 2);
        assert_eq!(s.sql, "INSERT INTO t (a, b) VALUES ($2, $3), ($4, $5)");
    }
}
