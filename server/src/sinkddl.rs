//! Parsing of `CREATE SINK` and `DROP SINK` (RisingWave's syntax), which
//! sqlparser does not know:
//!
//! ```sql
//! CREATE SINK [IF NOT EXISTS] name { FROM view | AS query }
//!   WITH (connector = 'kafka', ...) [FORMAT f ENCODE e [(options)]]
//! DROP SINK [IF EXISTS] name [, ...]
//! ```

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::dialect::{group_end, ident, is_kw, parse_options, syntax};
use crate::error::ExecResult;

/// A parsed `CREATE SINK`.
#[derive(Debug, Clone)]
pub struct SinkDdl {
    pub if_not_exists: bool,
    pub name: String,
    /// `FROM view`: the view's name.
    pub from: Option<String>,
    /// `AS query`: the query's text.
    pub query: Option<String>,
    pub with: Vec<(String, String)>,
    pub format: Option<String>,
    pub encode: Option<String>,
    pub encode_opts: Vec<(String, String)>,
    /// The statement as written (stored in the catalog).
    pub text: String,
}

/// Byte offset in `sql` of a token's start (spans count lines and
/// characters from 1).
fn offset(sql: &str, t: &TokenWithSpan) -> usize {
    let (line, col) = (t.span.start.line as usize, t.span.start.column as usize);
    let mut at = 0;
    for (n, l) in sql.split_inclusive('\n').enumerate() {
        if n + 1 == line {
            return at
                + l.char_indices()
                    .nth(col.saturating_sub(1))
                    .map_or(l.len(), |(i, _)| i);
        }
        at += l.len();
    }
    sql.len()
}

pub fn parse_create_sink(sql: &str) -> ExecResult<SinkDdl> {
    let spanned: Vec<TokenWithSpan> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| syntax(e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::SemiColon))
        .collect();
    let t: Vec<Token> = spanned.iter().map(|s| s.token.clone()).collect();
    let mut i = 2; // after CREATE SINK
    let mut if_not_exists = false;
    if is_kw(t.get(i), "if") && is_kw(t.get(i + 1), "not") && is_kw(t.get(i + 2), "exists") {
        if_not_exists = true;
        i += 3;
    }
    let mut name = ident(t.get(i)).ok_or_else(|| syntax("expected a name after CREATE SINK"))?;
    i += 1;
    while matches!(t.get(i), Some(Token::Period)) {
        name = ident(t.get(i + 1)).ok_or_else(|| syntax("expected a name"))?;
        i += 2;
    }
    // The sink's own WITH: the last top-level `WITH (` (a query may begin
    // with a WITH of its own).
    let mut depth = 0i32;
    let mut with_at = None;
    for (j, tok) in t.iter().enumerate().skip(i) {
        match tok {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0
                && is_kw(Some(tok), "with")
                && matches!(t.get(j + 1), Some(Token::LParen)) =>
            {
                with_at = Some(j)
            }
            _ => {}
        }
    }
    let with_at = with_at.ok_or_else(|| syntax("CREATE SINK needs WITH (connector = ...)"))?;
    let (mut from, mut query) = (None, None);
    if is_kw(t.get(i), "from") {
        let mut n = ident(t.get(i + 1)).ok_or_else(|| syntax("expected a view name after FROM"))?;
        let mut k = i + 2;
        while matches!(t.get(k), Some(Token::Period)) {
            n = ident(t.get(k + 1)).ok_or_else(|| syntax("expected a name"))?;
            k += 2;
        }
        if k != with_at {
            return Err(syntax(format!(
                "unexpected {} after CREATE SINK ... FROM {n}",
                t.get(k).map_or_else(String::new, |x| x.to_string())
            )));
        }
        from = Some(n);
    } else if is_kw(t.get(i), "as") && i + 1 < with_at {
        let start = offset(sql, &spanned[i + 1]);
        let end = offset(sql, &spanned[with_at]);
        query = Some(sql[start..end].trim().to_string());
    } else {
        return Err(syntax("CREATE SINK needs FROM <view> or AS <query>"));
    }
    let end = group_end(&t, with_at + 1)?;
    let with = parse_options(&t[with_at + 2..end - 1])?;
    let mut k = end;
    let (mut format, mut encode, mut encode_opts) = (None, None, Vec::new());
    while k < t.len() {
        if is_kw(t.get(k), "format") {
            format = ident(t.get(k + 1));
            k += 2;
        } else if is_kw(t.get(k), "encode") {
            encode = ident(t.get(k + 1));
            k += 2;
            if matches!(t.get(k), Some(Token::LParen)) {
                let e = group_end(&t, k)?;
                encode_opts = parse_options(&t[k + 1..e - 1])?;
                k = e;
            }
        } else {
            return Err(syntax(format!("unexpected {} in CREATE SINK", t[k])));
        }
    }
    Ok(SinkDdl {
        if_not_exists,
        name,
        from,
        query,
        with,
        format,
        encode,
        encode_opts,
        text: sql.trim().trim_end_matches(';').trim().to_string(),
    })
}

/// `DROP SINK [IF EXISTS] a, b [CASCADE | RESTRICT]`: (names, if_exists).
pub fn parse_drop_sink(sql: &str) -> ExecResult<(Vec<String>, bool)> {
    let (names, if_exists, _) = crate::dialect::parse_drop_names(sql, "SINK")?;
    Ok((names, if_exists))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let d = parse_create_sink(
            "CREATE SINK IF NOT EXISTS s FROM public.mv WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = 'h:1', primary_key = 'a') FORMAT UPSERT ENCODE JSON;",
        )
        .unwrap();
        assert!(d.if_not_exists);
        assert_eq!(d.from.as_deref(), Some("mv"));
        assert_eq!(d.format.as_deref(), Some("upsert"));
        assert_eq!(d.with.len(), 4);
        let d = parse_create_sink(
            "CREATE SINK s AS WITH x AS (SELECT 'it''s' AS a)\n  SELECT a FROM x WITH (connector='kafka', topic='t')",
        )
        .unwrap();
        assert_eq!(
            d.query.as_deref(),
            Some("WITH x AS (SELECT 'it''s' AS a)\n  SELECT a FROM x")
        );
        assert!(d.format.is_none());
        assert!(parse_create_sink("CREATE SINK s FROM v").is_err());
        assert!(parse_create_sink("CREATE SINK s FROM v x WITH (connector='kafka')").is_err());
        assert_eq!(
            parse_drop_sink("DROP SINK IF EXISTS a, b").unwrap(),
            (vec!["a".to_string(), "b".to_string()], true)
        );
    }
}
