//! Freshet's SQL dialect: statement splitting and the statements parsed by hand.
//!
//! Standard SQL goes to sqlparser's PostgreSQL dialect. Only the streaming
//! statements sqlparser does not know (`FLUSH`, `SHOW MATERIALIZED VIEWS`,
//! ...) are recognized here, by their leading keywords.

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{code, ExecError, ExecResult};

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum Parsed {
    Flush,
    ShowTables,
    ShowMaterializedViews,
    Sql(Box<Statement>),
}

/// Splits a query string into statements at top-level semicolons, honouring
/// quotes, dollar quotes and comments. Empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // Dollar quote: $tag$ ... $tag$
                if let Some(end) = sql[i + 1..].find('$') {
                    let tag = &sql[i..i + end + 2];
                    if tag[1..tag.len() - 1]
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_')
                        && !tag[1..tag.len() - 1].starts_with(|c: char| c.is_ascii_digit())
                    {
                        if let Some(close) = sql[i + tag.len()..].find(tag) {
                            i += tag.len() + close + tag.len() - 1;
                        }
                    }
                }
            }
            b';' => {
                out.push(sql[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(sql[start.min(sql.len())..].to_string());
    out.into_iter().filter(|s| !is_blank(s)).collect()
}

/// True if `s` holds only whitespace and comments.
pub fn is_blank(s: &str) -> bool {
    let mut rest = s.trim();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|x| x.1).unwrap_or("").trim();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|x| x.1).unwrap_or("").trim();
        } else {
            return false;
        }
    }
}

fn words(sql: &str) -> Vec<String> {
    sql.split_whitespace()
        .map(|w| w.trim_end_matches(';').to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Parses one statement.
pub fn parse_one(sql: &str) -> ExecResult<Parsed> {
    let w = words(strip_comments(sql).as_str());
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["flush"] => return Ok(Parsed::Flush),
        ["show", "tables"] => return Ok(Parsed::ShowTables),
        ["show", "materialized", "views"] => return Ok(Parsed::ShowMaterializedViews),
        _ => {}
    }
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .strip_prefix("sql parser error: ")
            .unwrap_or(&msg)
            .to_string();
        ExecError::new(code::SYNTAX, format!("syntax error: {msg}"))
    })?;
    match stmts.len() {
        1 => Ok(Parsed::Sql(Box::new(stmts.remove(0)))),
        0 => Err(ExecError::new(code::SYNTAX, "empty statement")),
        _ => Err(ExecError::new(
            code::SYNTAX,
            "cannot insert multiple commands into a prepared statement",
        )),
    }
}

fn strip_comments(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons() {
        let s = split_statements("select 'a;b'; -- x;\n select $$c;d$$ ;; flush;");
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(matches!(parse_one(&s[2]).unwrap(), Parsed::Flush));
        assert!(split_statements(" ; -- only a comment").is_empty());
    }
}
