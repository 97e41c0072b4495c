//! Freshet's SQL dialect: statement splitting and the statements parsed by hand.
//!
//! Standard SQL goes to sqlparser's PostgreSQL dialect. Only the streaming
//! statements sqlparser does not know (`FLUSH`, `SHOW MATERIALIZED VIEWS`,
//! ...) are recognized here, by their leading keywords. Connector DDL
//! (`CREATE SOURCE`, `CREATE TABLE ... WITH (connector = ...) FORMAT ...
//! ENCODE ...`) is split here into a plain `CREATE TABLE` that sqlparser
//! parses and the options, which it cannot parse (dotted option names).

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{code, ExecError, ExecResult};

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum Parsed {
    Flush,
    ShowTables,
    ShowMaterializedViews,
    ShowSources,
    ShowSourceErrors,
    /// `SHOW SOURCE PROGRESS`: rows read and whether each reader finished.
    ShowSourceProgress,
    /// `SHOW WATERMARKS`: watermarks and late events per table, source and view.
    ShowWatermarks,
    /// `SHOW STATE`: committed operator state entries per materialized view.
    ShowState,
    DropSource {
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    CreateConnector(Box<ConnectorDdl>),
    /// `CREATE SINK` ([`crate::sinkddl`]).
    CreateSink(Box<crate::sinkddl::SinkDdl>),
    DropSink {
        names: Vec<String>,
        if_exists: bool,
    },
    /// `SHOW SINKS`: each sink's target, format and delivery counters.
    ShowSinks,
    /// `DECLARE c CURSOR FOR SUBSCRIBE v`.
    DeclareSubscribe(crate::exec::subscribe::DeclareSubscribe),
    /// `COPY (SUBSCRIBE v) TO STDOUT`.
    CopySubscribe(Box<crate::exec::subscribe::CopySubscribe>),
    /// `FETCH ... WITH (timeout = '...')`.
    FetchTimeout {
        stmt: Box<Statement>,
        timeout: std::time::Duration,
    },
    /// `CREATE | ALTER | DROP USER | ROLE`.
    User(UserDdl),
    Sql(Box<Statement>),
}

/// What a user statement does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAction {
    Create,
    Alter,
    Drop,
}

/// `CREATE USER name [WITH] [LOGIN] PASSWORD 'pw'`, `ALTER USER name [WITH]
/// PASSWORD 'pw' | NULL`, `DROP USER [IF EXISTS] name` (and `ROLE`).
#[derive(Debug, Clone)]
pub struct UserDdl {
    pub action: UserAction,
    pub name: String,
    /// `Some(None)` for `PASSWORD NULL`.
    pub password: Option<Option<String>>,
    pub if_exists: bool,
}

/// A `CREATE SOURCE` or `CREATE TABLE ... WITH (connector = ...)`.
#[derive(Debug, Clone)]
pub struct ConnectorDdl {
    /// True for `CREATE SOURCE`.
    pub is_source: bool,
    pub if_not_exists: bool,
    pub name: String,
    /// `CREATE TABLE name (columns...)`, or `None` when no columns are given.
    pub table_sql: Option<String>,
    pub with: Vec<(String, String)>,
    pub format: Option<String>,
    pub encode: Option<String>,
    pub encode_opts: Vec<(String, String)>,
    /// `WATERMARK FOR` and `APPEND ONLY`.
    pub time: TimeClauses,
    /// The statement as written (stored in the catalog).
    pub text: String,
}

/// The event-time clauses of `CREATE TABLE` / `CREATE SOURCE`:
/// `WATERMARK FOR col AS col - INTERVAL '...'` in the column list and
/// `APPEND ONLY` after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeClauses {
    /// (column, delay as an interval text such as `5 seconds`).
    pub watermark: Option<(String, String)>,
    pub append_only: bool,
}

/// Options a `CREATE TABLE` statement carries its [`TimeClauses`] in (so the
/// statement's text, stored in the catalog, keeps them).
pub const OPT_WATERMARK_COLUMN: &str = "watermark_column";
pub const OPT_WATERMARK_DELAY: &str = "watermark_delay";
pub const OPT_APPEND_ONLY: &str = "append_only";
/// The option `EMIT ON WINDOW CLOSE` becomes on `CREATE MATERIALIZED VIEW`.
pub const OPT_EMIT: &str = "emit";
pub const EMIT_ON_WINDOW_CLOSE: &str = "on_window_close";

/// Removes `WATERMARK FOR ...` from the column list of a `CREATE TABLE` /
/// `CREATE SOURCE` and `APPEND ONLY` after it, returning the rest of the
/// statement and the clauses.
pub fn take_time_clauses(sql: &str) -> ExecResult<(String, TimeClauses)> {
    let toks = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| syntax(e.to_string()))?;
    let mut time = TimeClauses::default();
    let significant: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let at = |k: usize| significant.get(k).map(|&i| &toks[i]);
    // The column list: the first top-level parenthesis.
    let Some(open) = (0..significant.len()).find(|&k| matches!(at(k), Some(Token::LParen))) else {
        return Ok((sql.to_string(), time));
    };
    let mut depth = 0i32;
    let mut close = None;
    let mut remove: Vec<(usize, usize)> = Vec::new(); // significant-index ranges, inclusive
    let mut item_start = open + 1;
    for k in open..significant.len() {
        match at(k) {
            Some(Token::LParen) => depth += 1,
            Some(Token::RParen) => {
                depth -= 1;
                if depth == 0 {
                    check_item(&mut time, &at, item_start, k, &mut remove, true)?;
                    close = Some(k);
                    break;
                }
            }
            Some(Token::Comma) if depth == 1 => {
                check_item(&mut time, &at, item_start, k, &mut remove, false)?;
                item_start = k + 1;
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return Ok((sql.to_string(), time));
    };
    let mut k = close + 1;
    while k < significant.len() {
        if is_kw(at(k), "append") && is_kw(at(k + 1), "only") {
            time.append_only = true;
            remove.push((k, k + 1));
            k += 2;
        } else {
            k += 1;
        }
    }
    let mut drop = vec![false; toks.len()];
    for (a, b) in remove {
        for flag in drop
            .iter_mut()
            .take(significant[b] + 1)
            .skip(significant[a])
        {
            *flag = true;
        }
    }
    let out: String = toks
        .iter()
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|(t, _)| t.to_string())
        .collect();
    Ok((out, time))
}

/// Checks one column-list item (significant tokens `start..end`, `end`
/// being its `,` or the closing `)`): a `WATERMARK FOR` clause is recorded
/// and marked for removal with one adjacent comma.
fn check_item<'a>(
    time: &mut TimeClauses,
    at: &impl Fn(usize) -> Option<&'a Token>,
    start: usize,
    end: usize,
    remove: &mut Vec<(usize, usize)>,
    last: bool,
) -> ExecResult<()> {
    if !(is_kw(at(start), "watermark") && is_kw(at(start + 1), "for")) {
        return Ok(());
    }
    if time.watermark.is_some() {
        return Err(syntax("only one WATERMARK clause is allowed"));
    }
    let col = ident(at(start + 2)).ok_or_else(|| syntax("WATERMARK FOR needs a column name"))?;
    if !is_kw(at(start + 3), "as") {
        return Err(syntax("expected AS after WATERMARK FOR column"));
    }
    let expr: String = (start + 4..end)
        .filter_map(|k| at(k).map(|t| t.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let delay = watermark_delay(&col, &expr)?;
    time.watermark = Some((col, delay));
    // Drop the clause and its separating comma (the one before it when it
    // is the last item, else the one after it).
    if last {
        let comma_before = start > 0 && matches!(at(start - 1), Some(Token::Comma));
        remove.push((if comma_before { start - 1 } else { start }, end - 1));
    } else {
        remove.push((start, end));
    }
    Ok(())
}

/// The delay of `WATERMARK FOR col AS <expr>`: `<expr>` is `col` or
/// `col - INTERVAL '...'`; returns the interval text (`0 seconds` for none).
fn watermark_delay(col: &str, expr: &str) -> ExecResult<String> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Value};
    let unsupported = || {
        ExecError::new(
            code::NOT_SUPPORTED,
            format!("WATERMARK FOR {col} AS {expr}: the watermark must be \"{col}\" or \"{col} - INTERVAL '...'\""),
        )
    };
    let e = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(expr)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| syntax(format!("in WATERMARK: {e}")))?;
    let is_col = |e: &Expr| matches!(e, Expr::Identifier(i) if i.value.eq_ignore_ascii_case(col));
    match e {
        ref x if is_col(x) => Ok("0 seconds".to_string()),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_col(&left) => match *right {
            Expr::Interval(i) => {
                let Expr::Value(v) = i.value.as_ref() else {
                    return Err(unsupported());
                };
                let Value::SingleQuotedString(text) = &v.value else {
                    return Err(unsupported());
                };
                Ok(match &i.leading_field {
                    Some(f) => format!("{text} {f}"),
                    None => text.clone(),
                })
            }
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
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
        ["show", "sources"] => return Ok(Parsed::ShowSources),
        ["show", "source", "errors"] => return Ok(Parsed::ShowSourceErrors),
        ["show", "source", "progress"] => return Ok(Parsed::ShowSourceProgress),
        ["show", "watermarks"] => return Ok(Parsed::ShowWatermarks),
        ["show", "state"] => return Ok(Parsed::ShowState),
        ["drop", "source", ..] => return parse_drop_source(sql),
        ["show", "sinks"] => return Ok(Parsed::ShowSinks),
        ["declare", ..] => {
            if let Some(d) = crate::exec::subscribe::parse_declare_subscribe(sql)? {
                return Ok(Parsed::DeclareSubscribe(d));
            }
        }
        ["fetch", ..] => {
            if let Some((rest, timeout)) = crate::exec::subscribe::split_fetch_timeout(sql)? {
                if let Parsed::Sql(stmt) = parse_sql_one(&rest)? {
                    return Ok(Parsed::FetchTimeout { stmt, timeout });
                }
            }
        }
        ["copy", ..] => {
            if let Some(c) = crate::exec::subscribe::parse_copy_subscribe(sql)? {
                return Ok(Parsed::CopySubscribe(Box::new(c)));
            }
        }
        ["subscribe", ..] => {
            return Err(ExecError::not_supported(
                "SUBSCRIBE on its own; run it in a cursor: DECLARE c CURSOR FOR SUBSCRIBE v; FETCH 100 FROM c",
            ))
        }
        ["create", "sink", ..] => {
            return Ok(Parsed::CreateSink(Box::new(
                crate::sinkddl::parse_create_sink(sql)?,
            )))
        }
        ["drop", "sink", ..] => {
            let (names, if_exists) = crate::sinkddl::parse_drop_sink(sql)?;
            return Ok(Parsed::DropSink { names, if_exists });
        }
        ["create" | "alter" | "drop", "user" | "role", ..] => return parse_user_ddl(sql),
        ["create", "source", ..] | ["create", "table", ..] => {
            let (rest, time) = take_time_clauses(sql)?;
            if let Some(mut ddl) = parse_connector_ddl(&rest)? {
                ddl.time = time;
                ddl.text = sql.trim().trim_end_matches(';').trim().to_string();
                return Ok(Parsed::CreateConnector(Box::new(ddl)));
            }
            if time != TimeClauses::default() {
                let mut p = parse_sql_one(&rest)?;
                if let Parsed::Sql(stmt) = &mut p {
                    if let Statement::CreateTable(c) = stmt.as_mut() {
                        let mut opts = Vec::new();
                        if let Some((col, delay)) = &time.watermark {
                            opts.push(sql_option(OPT_WATERMARK_COLUMN, col));
                            opts.push(sql_option(OPT_WATERMARK_DELAY, delay));
                        }
                        if time.append_only {
                            opts.push(sql_option(OPT_APPEND_ONLY, "true"));
                        }
                        add_with_options(&mut c.table_options, opts);
                    }
                }
                return Ok(p);
            }
        }
        ["create" | "explain", ..]
            if w.ends_with(&["emit", "on", "window", "close"])
                && w.windows(2).any(|p| p == ["materialized", "view"]) =>
        {
            let body = strip_comments(sql);
            let body = body.trim().trim_end_matches(';').trim_end();
            let cut = body
                .to_ascii_lowercase()
                .rfind("emit")
                .unwrap_or(body.len());
            let mut p = parse_sql_one(&body[..cut])?;
            if let Parsed::Sql(stmt) = &mut p {
                let stmt = match stmt.as_mut() {
                    Statement::Explain { statement, .. } => statement.as_mut(),
                    s => s,
                };
                if let Statement::CreateView(v) = stmt {
                    add_with_options(
                        &mut v.options,
                        vec![sql_option(OPT_EMIT, EMIT_ON_WINDOW_CLOSE)],
                    );
                }
            }
            return Ok(p);
        }
        _ => {}
    }
    parse_sql_one(sql)
}

/// `key = 'value'` as a statement option.
fn sql_option(key: &str, value: &str) -> datafusion::sql::sqlparser::ast::SqlOption {
    use datafusion::sql::sqlparser::ast::{Expr, Ident, SqlOption, Value};
    SqlOption::KeyValue {
        key: Ident::new(key),
        value: Expr::value(Value::SingleQuotedString(value.to_string())),
    }
}

fn add_with_options(
    to: &mut datafusion::sql::sqlparser::ast::CreateTableOptions,
    mut opts: Vec<datafusion::sql::sqlparser::ast::SqlOption>,
) {
    use datafusion::sql::sqlparser::ast::CreateTableOptions;
    *to = match std::mem::take(to) {
        CreateTableOptions::With(mut v) => {
            v.append(&mut opts);
            CreateTableOptions::With(v)
        }
        _ => CreateTableOptions::With(opts),
    };
}

/// Takes Freshet's options (`names`) out of a statement's `WITH (...)`,
/// returning them as (lowercase key, text value).
pub fn take_options(
    from: &mut datafusion::sql::sqlparser::ast::CreateTableOptions,
    names: &[&str],
) -> Vec<(String, String)> {
    use datafusion::sql::sqlparser::ast::{CreateTableOptions, Expr, SqlOption, Value};
    let CreateTableOptions::With(v) = from else {
        return Vec::new();
    };
    let mut out = Vec::new();
    v.retain(|o| {
        if let SqlOption::KeyValue { key, value } = o {
            let k = key.value.to_ascii_lowercase();
            if names.contains(&k.as_str()) {
                let text = match value {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    other => other.to_string(),
                };
                out.push((k, text));
                return false;
            }
        }
        true
    });
    if v.is_empty() {
        *from = CreateTableOptions::None;
    }
    out
}

/// Parses one statement with sqlparser, with Freshet's rewrites.
fn parse_sql_one(sql: &str) -> ExecResult<Parsed> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .strip_prefix("sql parser error: ")
            .unwrap_or(&msg)
            .to_string();
        ExecError::new(code::SYNTAX, format!("syntax error: {msg}"))
    })?;
    match stmts.len() {
        1 => {
            let mut stmt = stmts.remove(0);
            {
                use datafusion::sql::sqlparser::ast::VisitMut;
                let _ = stmt.visit(&mut IntervalClockTimes);
            }
            if let Statement::Query(q) = &mut stmt {
                crate::colnames::disambiguate(q);
            }
            if matches!(stmt, Statement::Query(_)) && is_catalog_query(&stmt, sql) {
                // The rewriter renames `current_user`; its column keeps
                // PostgreSQL's name.
                let named = match &mut stmt {
                    Statement::Query(q) => name_session_functions(q),
                    _ => false,
                };
                let text = if named {
                    stmt.to_string()
                } else {
                    sql.to_string()
                };
                return Ok(Parsed::Sql(Box::new(pg_compatible(&text).unwrap_or(stmt))));
            }
            Ok(Parsed::Sql(Box::new(stmt)))
        }
        0 => Err(ExecError::new(code::SYNTAX, "empty statement")),
        _ => Err(ExecError::new(
            code::SYNTAX,
            "cannot insert multiple commands into a prepared statement",
        )),
    }
}

/// In a materialized view, `now()` and `current_timestamp` mean the
/// processing time as it advances: both become `proctime()`, which the
/// planner turns into a temporal filter (`WHERE ts > now() - INTERVAL ...`).
pub fn now_to_proctime(q: &mut datafusion::sql::sqlparser::ast::Query) {
    use datafusion::sql::sqlparser::ast::{Expr, VisitMut, VisitorMut};
    struct Now;
    impl VisitorMut for Now {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Function(f) = e {
                let name = f.name.to_string().to_ascii_lowercase();
                if matches!(
                    name.as_str(),
                    "now" | "current_timestamp" | "pg_catalog.now"
                ) {
                    *f = sql_call(freshet_planner::tvf::PROCTIME, vec![], vec![]);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = q.visit(&mut Now);
}

/// Interval literals with a clock time (`'1 day 02:03:04'`, PostgreSQL's
/// output format, which drivers send back) spelled with units, which
/// DataFusion parses: `'1 day 2 hours 3 minutes 4 seconds'`; and casts to
/// `json` / `jsonb` as casts to text.
struct IntervalClockTimes;

impl datafusion::sql::sqlparser::ast::VisitorMut for IntervalClockTimes {
    type Break = ();

    /// Table function names (`TUMBLE(...)`) fold to lower case, like other
    /// unquoted identifiers.
    fn pre_visit_table_factor(
        &mut self,
        t: &mut datafusion::sql::sqlparser::ast::TableFactor,
    ) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{
            Expr, FunctionArg, FunctionArgExpr, ObjectNamePart, TableAlias, TableFactor,
        };
        if let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = t
        {
            for part in name.0.iter_mut() {
                if let ObjectNamePart::Identifier(i) = part {
                    if i.quote_style.is_none() {
                        i.value = i.value.to_lowercase();
                    }
                }
            }
            // `TUMBLE(bid, ...)` and `HOP(bid, ...)` without an alias are
            // named after their relation, so `bid.auction` resolves.
            let window = matches!(name.to_string().as_str(), "tumble" | "hop");
            if window && alias.is_none() {
                if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(rel)))) =
                    args.args.first()
                {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: rel.clone(),
                        columns: vec![],
                        at: None,
                    });
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_expr(
        &mut self,
        expr: &mut datafusion::sql::sqlparser::ast::Expr,
    ) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{DataType, Expr, Value};
        // `1.5e3` is the numeric 1500, as in PostgreSQL; DataFusion's
        // decimal literals take no exponent.
        if let Expr::Value(v) = expr {
            if let Value::Number(n, _) = &v.value {
                if let Some(plain) = expand_exponent(n) {
                    let scale = plain.split_once('.').map_or(0, |(_, f)| f.len());
                    *expr = Expr::Cast {
                        kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                        expr: Box::new(Expr::value(Value::Number(plain, false))),
                        data_type: DataType::Numeric(
                            datafusion::sql::sqlparser::ast::ExactNumberInfo::PrecisionAndScale(
                                38,
                                scale as i64,
                            ),
                        ),
                        array: false,
                        format: None,
                    };
                    return std::ops::ControlFlow::Continue(());
                }
            }
        }
        // `generate_series(a, b)` in an expression returns rows, as in
        // PostgreSQL: unnest its array (once, however often visited).
        if let Expr::Function(f) = expr {
            let name = f.name.to_string().to_ascii_lowercase();
            if name == "generate_series"
                && matches!(&f.args, datafusion::sql::sqlparser::ast::FunctionArguments::List(l) if (2..=3).contains(&l.args.len()))
            {
                *expr = Expr::Function(sql_call("unnest", vec![expr.clone()], vec![]));
                return std::ops::ControlFlow::Continue(());
            }
            if let Some(inner) = double_unnest(f) {
                *expr = inner;
                return std::ops::ControlFlow::Continue(());
            }
        }
        // PostgreSQL's prefix operators `|/` (square root), `||/` (cube
        // root) and `@` (absolute value) as the functions they are.
        if let Expr::UnaryOp { op, expr: inner } = expr {
            use datafusion::sql::sqlparser::ast::UnaryOperator as U;
            let name = match op {
                U::PGSquareRoot => Some("sqrt"),
                U::PGCubeRoot => Some("cbrt"),
                U::PGAbs => Some("abs"),
                _ => None,
            };
            if let Some(name) = name {
                *expr = Expr::Function(sql_call(name, vec![inner.as_ref().clone()], vec![]));
                return std::ops::ControlFlow::Continue(());
            }
        }
        // `- INTERVAL '1 day 2 hours'` negates every field; DataFusion
        // re-parses the text with a `-` in front, which negates only the
        // first (and fails on `'-1 day'`).
        if let Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus,
            expr: inner,
        } = expr
        {
            let mut e = inner.as_ref();
            while let Expr::Nested(x) = e {
                e = x;
            }
            if matches!(e, Expr::Interval(_)) {
                *expr = Expr::Nested(Box::new(Expr::BinaryOp {
                    left: inner.clone(),
                    op: datafusion::sql::sqlparser::ast::BinaryOperator::Multiply,
                    right: Box::new(Expr::value(Value::Number("-1".into(), false))),
                }));
                return std::ops::ControlFlow::Continue(());
            }
        }
        // JSON values are text to Freshet (the JSON functions take text).
        if let Expr::Cast {
            data_type,
            expr: inner,
            ..
        } = expr
        {
            match data_type {
                // jsonb is text in PostgreSQL's canonical form.
                DataType::JSONB => {
                    *expr = Expr::Function(sql_call(
                        "pg_jsonb_in",
                        vec![inner.as_ref().clone()],
                        vec![],
                    ));
                    return std::ops::ControlFlow::Continue(());
                }
                DataType::JSON => *data_type = DataType::Text,
                _ => {}
            }
        }
        // A bytea literal (`'\x0102'::bytea`) in PostgreSQL's input forms.
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Bytea,
            ..
        } = expr
        {
            if let Some(lit) = bytea_literal(inner) {
                *expr = lit;
                return std::ops::ControlFlow::Continue(());
            }
        }
        let value = match expr {
            Expr::Interval(i) if i.leading_field.is_none() && i.last_field.is_none() => {
                i.value.as_mut()
            }
            Expr::Cast {
                data_type: DataType::Interval { .. },
                expr,
                ..
            } => expr.as_mut(),
            _ => return std::ops::ControlFlow::Continue(()),
        };
        if let Expr::Value(v) = value {
            if let Value::SingleQuotedString(text) = &mut v.value {
                if let Some(t) = interval_with_units(text) {
                    *text = t;
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// `unnest(unnest(generate_series(...)))`, which writing `unnest` around a
/// `generate_series` the select list already expands gives: the inner call.
fn double_unnest(
    f: &datafusion::sql::sqlparser::ast::Function,
) -> Option<datafusion::sql::sqlparser::ast::Expr> {
    use datafusion::sql::sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments};
    let one_arg = |f: &datafusion::sql::sqlparser::ast::Function| -> Option<Expr> {
        match &f.args {
            FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    if !f.name.to_string().eq_ignore_ascii_case("unnest") {
        return None;
    }
    let inner = one_arg(f)?;
    let Expr::Function(g) = &inner else {
        return None;
    };
    if !g.name.to_string().eq_ignore_ascii_case("unnest") {
        return None;
    }
    match one_arg(g)? {
        Expr::Function(h) if h.name.to_string().eq_ignore_ascii_case("generate_series") => {
            Some(inner)
        }
        _ => None,
    }
}

use freshet_planner::pg::floattext::expand_exponent;

/// `text` with each `[-]h:m[:s]` clock time written as units; `None` when
/// there is none.
fn interval_with_units(text: &str) -> Option<String> {
    if let Some(t) = iso_interval_units(text.trim()) {
        return Some(t);
    }
    let mut changed = false;
    let parts: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            let (neg, body) = match w.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, w.strip_prefix('+').unwrap_or(w)),
            };
            let f: Vec<&str> = body.split(':').collect();
            let numeric =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
            if (f.len() == 2 || f.len() == 3) && f.iter().all(|p| numeric(p)) {
                changed = true;
                let sign = if neg { "-" } else { "" };
                let mut out = format!("{sign}{} hours {sign}{} minutes", f[0], f[1]);
                if let Some(sec) = f.get(2) {
                    out.push_str(&format!(" {sign}{sec} seconds"));
                }
                out
            } else {
                w.to_string()
            }
        })
        .collect();
    changed.then(|| parts.join(" "))
}

/// An ISO 8601 duration (`P1Y2M3DT4H5M6S`, `PT1.5S`, `P2W`) in units.
fn iso_interval_units(text: &str) -> Option<String> {
    let body = text.strip_prefix(['P', 'p'])?;
    if body.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut num = String::new();
    let mut in_time = false;
    for c in body.chars() {
        match c.to_ascii_uppercase() {
            'T' if num.is_empty() => in_time = true,
            d if d.is_ascii_digit() || d == '.' || d == '-' => num.push(d),
            u => {
                if num.is_empty() {
                    return None;
                }
                let unit = match (u, in_time) {
                    ('Y', false) => "years",
                    ('M', false) => "months",
                    ('W', false) => "weeks",
                    ('D', false) => "days",
                    ('H', true) => "hours",
                    ('M', true) => "minutes",
                    ('S', true) => "seconds",
                    _ => return None,
                };
                out.push(format!("{num} {unit}"));
                num.clear();
            }
        }
    }
    (num.is_empty() && !out.is_empty()).then(|| out.join(" "))
}

/// Whether a query is a client's catalog query (it reads `pg_catalog` or
/// `information_schema`, or uses catalog casts and functions). Only those go
/// through the catalog rewrites, which trade exactness for compatibility
/// (for example, they turn some subqueries into NULL); user queries are
/// planned exactly as written.
fn is_catalog_query(stmt: &Statement, sql: &str) -> bool {
    let mut catalog = false;
    let _ = datafusion::sql::sqlparser::ast::visit_relations(stmt, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.to_string().to_ascii_lowercase())
            .collect();
        let first = parts.first().map(String::as_str).unwrap_or("");
        let last = parts.last().map(String::as_str).unwrap_or("");
        if first == "pg_catalog" || first == "information_schema" || last.starts_with("pg_") {
            catalog = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if catalog {
        return true;
    }
    let lower = sql.to_ascii_lowercase();
    [
        "pg_catalog.",
        "pg_namespace",
        "::reg",
        " as reg",
        "current_schemas(",
        "to_regtype(",
        "current_user",
        "session_user",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

/// A query as `datafusion-pg-catalog` rewrites it for DataFusion: catalog
/// idioms clients send (`pg_catalog.` function qualifiers, `COLLATE`,
/// `OPERATOR(pg_catalog.~)`, `::regclass` casts, `= ANY(ARRAY[...])`, ...).
/// `None` when the rewriter cannot parse it (the plain parse is used).
fn pg_compatible(sql: &str) -> Option<Statement> {
    use datafusion::sql::sqlparser::ast::VisitMut;
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
    static PARSER: std::sync::OnceLock<PostgresCompatibilityParser> = std::sync::OnceLock::new();
    let mut sql = regclass_parameters(&system_regclass_literals(sql));
    if sql.contains("WITH RECURSIVE typeinfo_tree(") {
        sql = ASYNCPG_TYPE_INTROSPECTION.to_string();
    }
    for (from, to) in CLIENT_IDIOMS {
        if sql.contains(from) {
            sql = sql.replace(from, to);
        }
    }
    // Idioms spread over several lines are matched with whitespace collapsed
    // (and only then is the collapsed text used).
    let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (from, to) in CLIENT_IDIOMS_MULTILINE {
        let (flat, pat) = (collapse(&sql), collapse(from));
        if flat.contains(&pat) {
            sql = flat.replace(&pat, to);
        }
    }
    let parser = PARSER.get_or_init(PostgresCompatibilityParser::new);
    let mut stmts = parser.parse(&sql).ok()?;
    if stmts.len() != 1 {
        return None;
    }
    let mut stmt = stmts.remove(0);
    information_schema_columns(&mut stmt);
    let _ = stmt.visit(&mut ArraySubqueryToAgg);
    if let Statement::Query(q) = &mut stmt {
        crate::colnames::disambiguate(q);
    }
    Some(stmt)
}

/// `information_schema.columns` is Freshet's (PostgreSQL's type names, see
/// `infoschema`), under its own name in `pg_catalog`; an unaliased
/// reference keeps the name `columns` for qualified column references.
fn information_schema_columns(stmt: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{
        Ident, ObjectName, TableAlias, TableFactor, VisitMut, VisitorMut,
    };
    struct Columns;
    impl VisitorMut for Columns {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> std::ops::ControlFlow<()> {
            if let TableFactor::Table { name, alias, .. } = t {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .map(|p| p.to_string().to_ascii_lowercase())
                    .collect();
                let n = parts.len();
                if n >= 2 && parts[n - 2] == "information_schema" && parts[n - 1] == "columns" {
                    *name = ObjectName::from(vec![
                        Ident::new("pg_catalog"),
                        Ident::new(crate::infoschema::COLUMNS_TABLE),
                    ]);
                    if alias.is_none() {
                        *alias = Some(TableAlias {
                            explicit: true,
                            name: Ident::new("columns"),
                            columns: vec![],
                            at: None,
                        });
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Columns);
}

/// A string literal read as PostgreSQL's `bytea` input (`\x` hex or
/// backslash escapes), as a binary literal.
fn bytea_literal(
    e: &datafusion::sql::sqlparser::ast::Expr,
) -> Option<datafusion::sql::sqlparser::ast::Expr> {
    use datafusion::sql::sqlparser::ast::{Expr, Value};
    let Expr::Value(v) = e else {
        return None;
    };
    let (Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s)) = &v.value else {
        return None;
    };
    let bytes = crate::params::bytea(s).ok()?;
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    Some(Expr::Value(Value::HexStringLiteral(hex).into()))
}

/// INSERT ... VALUES string literals bound for `bytea` columns, read as
/// PostgreSQL's `bytea` input (DataFusion would store the text's bytes).
/// `schema_of` gives a table's columns by name.
pub fn bytea_insert_values(
    stmt: &mut Statement,
    schema_of: &dyn Fn(&str) -> Option<datafusion::arrow::datatypes::SchemaRef>,
) {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::sql::sqlparser::ast::{ObjectNamePart, SetExpr, TableObject};
    let Statement::Insert(ins) = stmt else {
        return;
    };
    let TableObject::TableName(name) = &ins.table else {
        return;
    };
    let Some(schema) = schema_of(&name.to_string()) else {
        return;
    };
    let binary = |i: usize| {
        schema
            .fields()
            .get(i)
            .is_some_and(|f| matches!(f.data_type(), DataType::Binary | DataType::LargeBinary))
    };
    // Whether each VALUES column goes to a bytea column.
    let targets: Vec<bool> = if ins.columns.is_empty() {
        (0..schema.fields().len()).map(binary).collect()
    } else {
        ins.columns
            .iter()
            .map(|c| {
                let c = match c.0.last() {
                    Some(ObjectNamePart::Identifier(i)) if i.quote_style.is_some() => {
                        i.value.clone()
                    }
                    Some(ObjectNamePart::Identifier(i)) => i.value.to_lowercase(),
                    _ => String::new(),
                };
                schema.index_of(&c).is_ok_and(binary)
            })
            .collect()
    };
    if !targets.iter().any(|b| *b) {
        return;
    }
    let Some(source) = ins.source.as_mut() else {
        return;
    };
    let SetExpr::Values(values) = source.body.as_mut() else {
        return;
    };
    for row in values.rows.iter_mut() {
        for (v, bin) in row.iter_mut().zip(&targets) {
            if *bin {
                if let Some(lit) = bytea_literal(v) {
                    *v = lit;
                }
            }
        }
    }
}

/// asyncpg's type introspection (a recursive walk over domains, composites,
/// ranges and array elements of the types `$1` names), for Freshet's types:
/// the types asked for and, for arrays, their element types, with the same
/// columns.
const ASYNCPG_TYPE_INTROSPECTION: &str = "SELECT t.oid AS oid, ns.nspname AS ns, \
    t.typname AS name, t.typtype AS kind, CAST(NULL AS oid) AS basetype, t.typelem AS elemtype, \
    e.typdelim AS elemdelim, CAST(NULL AS oid) AS range_subtype, \
    CAST(NULL AS text[]) AS attrtypoids, CAST(NULL AS text[]) AS attrnames, d.depth AS depth, \
    CAST(NULL AS text) AS basetype_name, e.typname AS elemtype_name, \
    CAST(NULL AS text) AS range_subtype_name \
    FROM (SELECT r.oid AS oid, 0 AS depth FROM pg_catalog.pg_type r WHERE r.oid = ANY($1::oid[]) \
      UNION ALL SELECT r.typelem AS oid, 1 AS depth FROM pg_catalog.pg_type r \
      WHERE r.oid = ANY($1::oid[]) AND r.typelem <> 0 AND r.typlen = -1) d \
    JOIN pg_catalog.pg_type t ON t.oid = d.oid \
    JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace \
    LEFT JOIN pg_catalog.pg_type e ON t.typlen = -1 AND t.typelem <> 0 AND e.oid = t.typelem \
    ORDER BY depth DESC";

/// Unaliased `current_user`, `session_user`, `user` and `current_role` in
/// a select list get their PostgreSQL column name as an alias. Whether any
/// did.
fn name_session_functions(q: &mut datafusion::sql::sqlparser::ast::Query) -> bool {
    use datafusion::sql::sqlparser::ast::{Expr, FunctionArguments, Ident, SelectItem, SetExpr};
    let SetExpr::Select(select) = q.body.as_mut() else {
        return false;
    };
    let mut named = false;
    for item in select.projection.iter_mut() {
        let SelectItem::UnnamedExpr(e) = item else {
            continue;
        };
        let name = match e {
            Expr::Identifier(i) if i.quote_style.is_none() => i.value.to_ascii_lowercase(),
            Expr::Function(f) if matches!(f.args, FunctionArguments::None) => {
                f.name.to_string().to_ascii_lowercase()
            }
            _ => continue,
        };
        if matches!(
            name.as_str(),
            "current_user" | "session_user" | "user" | "current_role"
        ) {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', name),
            };
            named = true;
        }
    }
    named
}

/// `$n::regclass` (a relation name bound as a parameter, as psycopg 3
/// sends SQLAlchemy's comment lookup) resolves the name when the query runs.
fn regclass_parameters(sql: &str) -> String {
    if !sql.contains("::") || !sql.to_ascii_lowercase().contains("regclass") {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(p) = rest.find('$') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let digits = after.chars().take_while(|c| c.is_ascii_digit()).count();
        let tail = &after[digits..];
        let cast = ["::pg_catalog.regclass", "::regclass"]
            .into_iter()
            .find(|c| tail.len() >= c.len() && tail[..c.len()].eq_ignore_ascii_case(c));
        match cast {
            Some(c) if digits > 0 => {
                out.push_str(&format!("freshet_regclass(${})", &after[..digits]));
                rest = &tail[c.len()..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    cast_regclass_parameters(&out)
}

/// `CAST($n AS [pg_catalog.]regclass)`, the other spelling of `$n::regclass`.
fn cast_regclass_parameters(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    while let Some(p) = lower[at..].find("cast($").map(|p| p + at) {
        let args = &lower[p + 5..];
        let Some(close) = args.find(')') else {
            break;
        };
        let inner: Vec<&str> = args[..close].split_whitespace().collect();
        let typed = matches!(
            inner.as_slice(),
            [param, "as", "regclass" | "pg_catalog.regclass"]
                if param.len() > 1 && param[1..].chars().all(|c| c.is_ascii_digit())
        );
        out.push_str(&sql[at..p]);
        if typed {
            out.push_str(&format!("freshet_regclass({})", inner[0]));
        } else {
            out.push_str(&sql[p..p + 5 + close + 1]);
        }
        at = p + 5 + close + 1;
    }
    out.push_str(&sql[at..]);
    out
}

/// PostgreSQL's fixed OIDs of system catalogs that clients name in
/// `'pg_class'::regclass`-style casts (to match `classoid` columns).
pub(crate) const SYSTEM_CATALOG_OIDS: &[(&str, u32)] = &[
    ("pg_class", 1259),
    ("pg_constraint", 2606),
    ("pg_namespace", 2615),
    ("pg_extension", 3079),
    ("pg_proc", 1255),
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_database", 1262),
    ("pg_description", 2609),
    ("pg_index", 2610),
    ("pg_trigger", 2620),
    ("pg_rewrite", 2618),
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
];

/// Replaces regclass casts of system catalog names by their fixed OIDs.
fn system_regclass_literals(sql: &str) -> String {
    if !sql.to_ascii_lowercase().contains("regclass") {
        return sql.to_string();
    }
    let mut out = sql.to_string();
    for (name, oid) in SYSTEM_CATALOG_OIDS {
        for q in [format!("pg_catalog.{name}"), name.to_string()] {
            for form in [
                format!("CAST('{q}' AS REGCLASS)"),
                format!("CAST('{q}' AS regclass)"),
                format!("'{q}'::pg_catalog.regclass"),
                format!("'{q}'::regclass"),
            ] {
                if out.contains(&form) {
                    out = out.replace(&form, &oid.to_string());
                }
            }
        }
    }
    out
}

/// Fragments of catalog queries that clients send and DataFusion cannot
/// plan (a lateral `unnest` of an outer column, a role list over `ANY`),
/// replaced by what they evaluate to for Freshet's objects (no storage
/// options, no row-level security policies).
const CLIENT_IDIOMS: &[(&str, &str)] = &[
    (
        "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')",
        "''",
    ),
    (
        "pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',')",
        "''",
    ),
    (
        "SELECT setting FROM pg_catalog.pg_settings WHERE name='max_index_keys'",
        "SELECT '32' AS setting",
    ),
    ("typinput='pg_catalog.array_in'::regproc", "typinput='array_in'"),
    // psql's `\d index`: an EXISTS in the select list, which DataFusion
    // cannot run; Freshet's constraints are never deferrable.
    (
        "(NOT i.indimmediate) AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x') AND condeferrable) AS condeferrable",
        "false AS condeferrable",
    ),
    (
        "(NOT i.indimmediate) AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x') AND condeferred) AS condeferred",
        "false AS condeferred",
    ),
    // psqlODBC's SQLPrimaryKeys: a boolean compared with 't' and an
    // int2vector subscript (pg_index has no rows for Freshet's objects).
    ("i.indisprimary = 't'", "i.indisprimary"),
    (
        "pg_catalog.array_remove(pg_catalog.array_remove(c.reloptions,'check_option=local'),'check_option=cascaded') AS reloptions, CASE WHEN 'check_option=local' = ANY (c.reloptions) THEN 'LOCAL'::text WHEN 'check_option=cascaded' = ANY (c.reloptions) THEN 'CASCADED'::text ELSE NULL END AS checkoption",
        "CAST(NULL AS text[]) AS reloptions, CAST(NULL AS text) AS checkoption",
    ),
];

/// A call `name(args)` in sqlparser's AST.
fn sql_call(
    name: &str,
    args: Vec<datafusion::sql::sqlparser::ast::Expr>,
    clauses: Vec<datafusion::sql::sqlparser::ast::FunctionArgumentClause>,
) -> datafusion::sql::sqlparser::ast::Function {
    use datafusion::sql::sqlparser::ast::{
        FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    };
    datafusion::sql::sqlparser::ast::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses,
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }
}

/// Whether `q` is a plain `SELECT` whose `FROM` reads one of `tables` first.
fn reads_only(q: &datafusion::sql::sqlparser::ast::Query, tables: &[&str]) -> bool {
    use datafusion::sql::sqlparser::ast::{SetExpr, TableFactor};
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return false;
    };
    match sel.from.first().map(|t| &t.relation) {
        Some(TableFactor::Table { name, .. }) => {
            let n = name.to_string().to_ascii_lowercase();
            tables
                .iter()
                .any(|t| n == *t || Some(n.as_str()) == t.strip_prefix("pg_catalog."))
        }
        _ => false,
    }
}

/// `x [NOT] LIKE p ESCAPE 'c'` whose pattern is not a literal (a bound
/// parameter): `[NOT] pg_like_escape(x, p, 'c')`, matched by Freshet.
fn like_to_function(expr: &mut datafusion::sql::sqlparser::ast::Expr) {
    use datafusion::sql::sqlparser::ast::{Expr, UnaryOperator};
    let Expr::Like {
        negated,
        expr: x,
        pattern,
        escape_char: Some(esc),
        any: false,
    } = expr
    else {
        return;
    };
    let call = Expr::Function(sql_call(
        "pg_like_escape",
        vec![
            x.as_ref().clone(),
            pattern.as_ref().clone(),
            Expr::Value(esc.clone()),
        ],
        vec![],
    ));
    *expr = if *negated {
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: Box::new(Expr::Nested(Box::new(call))),
        }
    } else {
        call
    };
}

/// A scalar subquery over `pg_catalog` tables that is not aggregated
/// (SQLAlchemy's identity and collation lookups): DataFusion only
/// decorrelates aggregated ones, so its value is wrapped in `max(...)`. The
/// catalog lookups clients send return at most one row, where PostgreSQL
/// would give the same answer.
fn aggregate_catalog_subquery(q: &mut datafusion::sql::sqlparser::ast::Query) {
    use datafusion::sql::sqlparser::ast::{Expr, GroupByExpr, SelectItem, SetExpr, TableFactor};
    if q.limit_clause.is_some() || q.order_by.is_some() {
        return;
    }
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return;
    };
    if sel.projection.len() != 1 || sel.from.is_empty() {
        return;
    }
    if !matches!(&sel.group_by, GroupByExpr::Expressions(e, _) if e.is_empty()) {
        return;
    }
    let catalog = sel.from.iter().all(|t| match &t.relation {
        TableFactor::Table { name, .. } => {
            let n = name.to_string().to_ascii_lowercase();
            n.starts_with("pg_catalog.") || n.starts_with("pg_")
        }
        _ => false,
    });
    if !catalog {
        return;
    }
    let (item, alias) = match &sel.projection[0] {
        SelectItem::UnnamedExpr(e) => (e.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return,
    };
    if let Expr::Function(f) = &item {
        let name = f.name.to_string().to_ascii_lowercase();
        let name = name.rsplit('.').next().unwrap_or(&name).to_string();
        if [
            "count",
            "sum",
            "min",
            "max",
            "avg",
            "array_agg",
            "string_agg",
            "bool_and",
            "bool_or",
            "every",
        ]
        .contains(&name.as_str())
        {
            return;
        }
    }
    let agg = Expr::Function(sql_call("max", vec![item], vec![]));
    sel.projection[0] = match alias {
        Some(alias) => SelectItem::ExprWithAlias { expr: agg, alias },
        None => SelectItem::UnnamedExpr(agg),
    };
}

/// `LIKE p ESCAPE 'c'` with `c` other than a backslash (DataFusion knows only
/// the backslash): the string literals of the pattern are re-escaped with a
/// backslash. Other patterns are left for DataFusion to refuse.
fn like_escape_to_backslash(
    pattern: &mut datafusion::sql::sqlparser::ast::Expr,
    escape_char: &mut Option<datafusion::sql::sqlparser::ast::ValueWithSpan>,
) {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Value};
    let Some(esc) = escape_char.as_ref() else {
        return;
    };
    let Value::SingleQuotedString(e) = &esc.value else {
        return;
    };
    let mut chars = e.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return;
    };
    if c == '\\' {
        return;
    }
    fn literals_only(e: &Expr) -> bool {
        match e {
            Expr::Value(v) => matches!(v.value, Value::SingleQuotedString(_)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::StringConcat,
                right,
            } => literals_only(left) && literals_only(right),
            Expr::Nested(e) => literals_only(e),
            _ => false,
        }
    }
    fn rewrite(e: &mut Expr, c: char) {
        match e {
            Expr::Value(v) => {
                if let Value::SingleQuotedString(s) = &mut v.value {
                    let mut out = String::with_capacity(s.len());
                    let mut it = s.chars();
                    while let Some(ch) = it.next() {
                        if ch == c {
                            out.push('\\');
                            if let Some(next) = it.next() {
                                out.push(next);
                            }
                        } else if ch == '\\' {
                            out.push_str("\\\\");
                        } else {
                            out.push(ch);
                        }
                    }
                    *s = out;
                }
            }
            Expr::BinaryOp { left, right, .. } => {
                rewrite(left, c);
                rewrite(right, c);
            }
            Expr::Nested(e) => rewrite(e, c),
            _ => {}
        }
    }
    if literals_only(pattern) {
        rewrite(pattern, c);
        *escape_char = None;
    }
}

/// Multi-line idioms, as (fragment, replacement), matched with whitespace
/// collapsed: Grafana's expansion of `search_path` into schema names (a
/// lateral `generate_series` over an array) as one `array_has` over the same
/// list, and SQLAlchemy 1.4's boolean compared with `'f'`.
const CLIENT_IDIOMS_MULTILINE: &[(&str, &str)] = &[(
    r#"quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"#,
    "array_has(string_to_array(replace(current_setting('search_path'),' ',''),','), quote_ident(table_schema))",
), (
    "ix.indisprimary = 'f'",
    "NOT ix.indisprimary",
)];

/// PostgreSQL's `int2vector` and `oidvector` catalog columns
/// (`pg_index.indkey`, ...) are subscripted from 0; here they are arrays,
/// subscripted from 1, so the index is shifted.
fn zero_based_vector_subscript(
    root: &datafusion::sql::sqlparser::ast::Expr,
    access_chain: &mut [datafusion::sql::sqlparser::ast::AccessExpr],
) {
    use datafusion::sql::sqlparser::ast::{AccessExpr, BinaryOperator, Expr, Subscript, Value};
    fn name_of(e: &Expr) -> Option<&str> {
        match e {
            Expr::Identifier(i) => Some(&i.value),
            Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.as_str()),
            _ => None,
        }
    }
    // `i.indkey[0]` parses as `i` with the chain `.indkey`, `[0]`.
    let (column, at) = match access_chain {
        [AccessExpr::Dot(d), AccessExpr::Subscript(_), ..] => (name_of(d), 1),
        [AccessExpr::Subscript(_), ..] => (name_of(root), 0),
        _ => return,
    };
    let Some(column) = column else {
        return;
    };
    if !matches!(
        column.to_ascii_lowercase().as_str(),
        "indkey" | "indoption" | "indclass" | "indcollation"
    ) {
        return;
    }
    if let Some(AccessExpr::Subscript(Subscript::Index { index })) = access_chain.get_mut(at) {
        *index = Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(index.clone()))),
            op: BinaryOperator::Plus,
            right: Box::new(Expr::Value(Value::Number("1".into(), false).into())),
        };
    }
}

/// Set-returning functions in a select list of a catalog query, as
/// `unnest`: `generate_series(a, b)` gives rows (not DataFusion's list),
/// `generate_subscripts(a, 1)` gives `1..cardinality(a)`, and
/// `information_schema._pg_expandarray(a)` the `(x, n)` records of
/// pgjdbc's key metadata.
fn set_returning_array_function(
    name: &str,
    f: &datafusion::sql::sqlparser::ast::Function,
) -> Option<datafusion::sql::sqlparser::ast::Expr> {
    use datafusion::sql::sqlparser::ast::{
        CastKind, DataType as T, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
    };
    let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
    let name = name.strip_prefix("information_schema.").unwrap_or(name);
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let args: Vec<Expr> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match (name, args.as_slice()) {
        ("generate_subscripts", [array, _dim]) => {
            let len = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::Function(sql_call(
                    "cardinality",
                    vec![array.clone()],
                    vec![],
                ))),
                data_type: T::BigInt(None),
                array: false,
                format: None,
            };
            let one = Expr::Value(Value::Number("1".into(), false).into());
            let series = Expr::Function(sql_call("generate_series", vec![one, len], vec![]));
            Some(Expr::Function(sql_call("unnest", vec![series], vec![])))
        }
        ("generate_series", [_, _] | [_, _, _]) => {
            // In a select list PostgreSQL's generate_series returns rows.
            let series = Expr::Function(sql_call("generate_series", args.clone(), vec![]));
            Some(Expr::Function(sql_call("unnest", vec![series], vec![])))
        }
        ("_pg_expandarray", [array]) => {
            let records = Expr::Function(sql_call("_pg_expandarray", vec![array.clone()], vec![]));
            Some(Expr::Function(sql_call("unnest", vec![records], vec![])))
        }
        _ => None,
    }
}

/// `ARRAY(SELECT x FROM ... [ORDER BY ...])` becomes
/// `(SELECT array_agg(x [ORDER BY ...]) FROM ...)`, a scalar subquery
/// DataFusion can decorrelate.
struct ArraySubqueryToAgg;

impl datafusion::sql::sqlparser::ast::VisitorMut for ArraySubqueryToAgg {
    type Break = ();

    fn post_visit_expr(
        &mut self,
        expr: &mut datafusion::sql::sqlparser::ast::Expr,
    ) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{
            Expr, FunctionArgumentClause, FunctionArgumentList, FunctionArguments, Ident,
            ObjectName, SelectItem, SetExpr,
        };
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        } = expr
        {
            like_escape_to_backslash(pattern, escape_char);
            if escape_char.is_some() {
                like_to_function(expr);
            }
            return std::ops::ControlFlow::Continue(());
        }
        if let Expr::CompoundFieldAccess { root, access_chain } = expr {
            zero_based_vector_subscript(root, access_chain);
            // `(record).field`: a field of a parenthesized expression.
            if let (
                Expr::Nested(inner),
                [datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field))],
            ) = (root.as_ref(), access_chain.as_slice())
            {
                let name = datafusion::sql::sqlparser::ast::Value::SingleQuotedString(
                    field.value.to_ascii_lowercase(),
                );
                *expr = Expr::Function(sql_call(
                    "get_field",
                    vec![inner.as_ref().clone(), Expr::Value(name.into())],
                    vec![],
                ));
            }
            return std::ops::ControlFlow::Continue(());
        }
        if let Expr::Identifier(id) = expr {
            let name = id.value.to_ascii_lowercase();
            if id.quote_style.is_none()
                && matches!(
                    name.as_str(),
                    "current_user" | "session_user" | "current_role"
                )
            {
                let f = if name == "session_user" {
                    "session_user"
                } else {
                    "current_user"
                };
                *expr = Expr::Function(sql_call(f, vec![], vec![]));
            }
            return std::ops::ControlFlow::Continue(());
        }
        if let Expr::Case {
            conditions,
            else_result,
            ..
        } = expr
        {
            // Every branch NULL: the whole CASE is NULL, whatever its
            // conditions (which may hold subqueries DataFusion cannot run).
            let null = |e: &Expr| matches!(e, Expr::Value(v) if v.value == datafusion::sql::sqlparser::ast::Value::Null);
            if conditions.iter().all(|c| null(&c.result)) && else_result.as_deref().is_none_or(null)
            {
                *expr = Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into());
            }
            return std::ops::ControlFlow::Continue(());
        }
        if let Expr::Subquery(q) = expr {
            if reads_only(
                q,
                &[
                    "pg_catalog.pg_sequence",
                    "pg_catalog.pg_collation",
                    "pg_catalog.pg_attrdef",
                ],
            ) {
                // Freshet has no sequences (identity columns), column
                // defaults or collations but the default: these lookups
                // find nothing.
                *expr = Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into());
                return std::ops::ControlFlow::Continue(());
            }
            aggregate_catalog_subquery(q);
            return std::ops::ControlFlow::Continue(());
        }
        let Expr::Function(f) = expr else {
            return std::ops::ControlFlow::Continue(());
        };
        let fname = f.name.to_string().to_ascii_lowercase();
        if let Some(e) = double_unnest(f) {
            *expr = e;
            return std::ops::ControlFlow::Continue(());
        }
        if let Some(e) = set_returning_array_function(&fname, f) {
            *expr = e;
            return std::ops::ControlFlow::Continue(());
        }
        // `current_user` and friends parse as argument-less functions.
        if matches!(f.args, FunctionArguments::None)
            && matches!(
                fname.as_str(),
                "current_user" | "session_user" | "current_role" | "user"
            )
        {
            let to = if fname == "session_user" {
                "session_user"
            } else {
                "current_user"
            };
            f.name = ObjectName::from(vec![Ident::new(to)]);
            f.args = FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![],
                clauses: vec![],
            });
            return std::ops::ControlFlow::Continue(());
        }
        if !f.name.to_string().eq_ignore_ascii_case("array") {
            return std::ops::ControlFlow::Continue(());
        }
        let FunctionArguments::Subquery(q) = &f.args else {
            return std::ops::ControlFlow::Continue(());
        };
        let mut q = q.as_ref().clone();
        let order = q.order_by.take();
        let SetExpr::Select(sel) = q.body.as_mut() else {
            return std::ops::ControlFlow::Continue(());
        };
        if sel.projection.len() != 1 {
            return std::ops::ControlFlow::Continue(());
        }
        let item = match sel.projection.remove(0) {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            other => {
                sel.projection.push(other);
                return std::ops::ControlFlow::Continue(());
            }
        };
        let mut clauses = Vec::new();
        if let Some(o) = order {
            if let datafusion::sql::sqlparser::ast::OrderByKind::Expressions(exprs) = o.kind {
                clauses.push(FunctionArgumentClause::OrderBy(exprs));
            }
        }
        let agg = sql_call("array_agg", vec![item], clauses);
        sel.projection
            .push(SelectItem::UnnamedExpr(Expr::Function(agg)));
        *expr = Expr::Subquery(Box::new(q));
        std::ops::ControlFlow::Continue(())
    }
}

pub(crate) fn syntax(msg: impl Into<String>) -> ExecError {
    ExecError::new(code::SYNTAX, format!("syntax error: {}", msg.into()))
}

/// Significant tokens of `sql` (no whitespace or comments).
pub(crate) fn tokens(sql: &str) -> ExecResult<Vec<Token>> {
    let toks = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| syntax(e.to_string()))?;
    Ok(toks
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
        .collect())
}

pub(crate) fn is_kw(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

pub(crate) fn ident(t: Option<&Token>) -> Option<String> {
    match t {
        Some(Token::Word(w)) if w.quote_style.is_some() => Some(w.value.clone()),
        Some(Token::Word(w)) => Some(w.value.to_lowercase()),
        _ => None,
    }
}

fn parse_user_ddl(sql: &str) -> ExecResult<Parsed> {
    let t = tokens(sql)?;
    let action = if is_kw(t.first(), "create") {
        UserAction::Create
    } else if is_kw(t.first(), "alter") {
        UserAction::Alter
    } else {
        UserAction::Drop
    };
    let mut i = 2;
    let mut if_exists = false;
    if action == UserAction::Drop && is_kw(t.get(i), "if") && is_kw(t.get(i + 1), "exists") {
        if_exists = true;
        i += 2;
    }
    let name = ident(t.get(i)).ok_or_else(|| syntax("expected a user name"))?;
    i += 1;
    let mut password = None;
    while i < t.len() {
        if is_kw(t.get(i), "password") {
            password = Some(match t.get(i + 1) {
                Some(Token::SingleQuotedString(p)) => Some(p.clone()),
                _ if is_kw(t.get(i + 1), "null") => None,
                _ => return Err(syntax("expected a quoted password after PASSWORD")),
            });
            i += 2;
        } else if action == UserAction::Drop {
            return Err(syntax("DROP USER takes only user names"));
        } else {
            // WITH, LOGIN, SUPERUSER, ...: accepted and ignored (every user
            // may do everything).
            i += 1;
        }
    }
    Ok(Parsed::User(UserDdl {
        action,
        name,
        password,
        if_exists,
    }))
}

fn parse_drop_source(sql: &str) -> ExecResult<Parsed> {
    let (names, if_exists, cascade) = parse_drop_names(sql, "SOURCE")?;
    Ok(Parsed::DropSource {
        names,
        if_exists,
        cascade,
    })
}

/// `DROP <what> [IF EXISTS] a, b [CASCADE | RESTRICT]` (a two-word
/// `DROP <what>`): the names, `IF EXISTS`, and `CASCADE`.
pub(crate) fn parse_drop_names(sql: &str, what: &str) -> ExecResult<(Vec<String>, bool, bool)> {
    let t = tokens(sql)?;
    let mut i = 2;
    let mut if_exists = false;
    if is_kw(t.get(i), "if") && is_kw(t.get(i + 1), "exists") {
        if_exists = true;
        i += 2;
    }
    let mut names = Vec::new();
    let mut cascade = false;
    while i < t.len() {
        let skip = is_kw(t.get(i), "restrict")
            || matches!(t.get(i), Some(Token::Comma) | Some(Token::Period));
        if is_kw(t.get(i), "cascade") {
            cascade = true;
        } else if !skip {
            let n = ident(t.get(i))
                .ok_or_else(|| syntax(format!("unexpected {} in DROP {what}", t[i])))?;
            // `schema.name`: keep the last part.
            if matches!(t.get(i.wrapping_sub(1)), Some(Token::Period)) {
                names.pop();
            }
            names.push(n);
        }
        i += 1;
    }
    if names.is_empty() {
        return Err(syntax(format!("DROP {what} needs a name")));
    }
    Ok((names, if_exists, cascade))
}

/// Index just past the parenthesised group that opens at `start`.
pub(crate) fn group_end(t: &[Token], start: usize) -> ExecResult<usize> {
    let mut depth = 0i32;
    for (j, tok) in t.iter().enumerate().skip(start) {
        match tok {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j + 1);
                }
            }
            _ => {}
        }
    }
    Err(syntax("unbalanced parentheses"))
}

/// `key = value, ...` inside a group (tokens between the parentheses).
pub(crate) fn parse_options(t: &[Token]) -> ExecResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in t.split(|x| matches!(x, Token::Comma)) {
        if item.is_empty() {
            continue;
        }
        let eq = item
            .iter()
            .position(|x| matches!(x, Token::Eq))
            .ok_or_else(|| syntax("expected key = 'value' in WITH options"))?;
        let mut key = String::new();
        for k in &item[..eq] {
            match k {
                Token::Word(w) => key.push_str(&w.value),
                Token::Period => key.push('.'),
                Token::Number(n, _) => key.push_str(n),
                Token::SingleQuotedString(s) => key.push_str(s),
                other => return Err(syntax(format!("unexpected {other} in option name"))),
            }
        }
        let value = match &item[eq + 1..] {
            [Token::SingleQuotedString(s)] => s.clone(),
            [Token::Number(n, _)] => n.clone(),
            [Token::Minus, Token::Number(n, _)] => format!("-{n}"),
            [Token::Word(w)] => w.value.clone(),
            _ => return Err(syntax(format!("invalid value for option \"{key}\""))),
        };
        out.push((key.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// Splits connector DDL; `None` for a `CREATE TABLE` without a connector.
fn parse_connector_ddl(sql: &str) -> ExecResult<Option<ConnectorDdl>> {
    let t = tokens(sql)?;
    let is_source = is_kw(t.get(1), "source");
    let mut i = 2;
    let mut if_not_exists = false;
    if is_kw(t.get(i), "if") && is_kw(t.get(i + 1), "not") && is_kw(t.get(i + 2), "exists") {
        if_not_exists = true;
        i += 3;
    }
    let name_at = i;
    let mut name = ident(t.get(i)).ok_or_else(|| syntax("expected a name after CREATE"))?;
    i += 1;
    while matches!(t.get(i), Some(Token::Period)) {
        name = ident(t.get(i + 1)).ok_or_else(|| syntax("expected a name"))?;
        i += 2;
    }
    let mut columns: Option<(usize, usize)> = None;
    if matches!(t.get(i), Some(Token::LParen)) {
        let end = group_end(&t, i)?;
        // `()` (what is left of a list holding only a WATERMARK): the
        // connector's own columns, as with no list.
        if end > i + 2 {
            columns = Some((i, end));
        }
        i = end;
    }
    // Clauses after the column list: WITH (...), FORMAT x ENCODE y (...).
    let mut with = Vec::new();
    let mut has_with = false;
    let (mut format, mut encode, mut encode_opts) = (None, None, Vec::new());
    let mut append_only = false;
    while i < t.len() {
        if is_kw(t.get(i), "with") && matches!(t.get(i + 1), Some(Token::LParen)) {
            let end = group_end(&t, i + 1)?;
            with = parse_options(&t[i + 2..end - 1])?;
            has_with = true;
            i = end;
        } else if is_kw(t.get(i), "format") {
            format = ident(t.get(i + 1));
            i += 2;
        } else if is_kw(t.get(i), "encode") {
            encode = ident(t.get(i + 1));
            i += 2;
            if matches!(t.get(i), Some(Token::LParen)) {
                let end = group_end(&t, i)?;
                encode_opts = parse_options(&t[i + 1..end - 1])?;
                i = end;
            }
        } else if is_kw(t.get(i), "append") && is_kw(t.get(i + 1), "only") {
            append_only = true;
            i += 2;
        } else if !is_source {
            return Ok(None);
        } else {
            return Err(syntax(format!("unexpected {} in CREATE SOURCE", t[i])));
        }
    }
    let _ = append_only;
    if !is_source && !with.iter().any(|(k, _)| k == "connector") {
        return Ok(None);
    }
    if !has_with {
        return Err(syntax("CREATE SOURCE needs WITH (connector = ...)"));
    }
    let table_sql = columns.map(|(s, e)| {
        let mut out = String::from("CREATE TABLE ");
        out.push_str(
            &t[name_at..s]
                .iter()
                .map(|x| x.to_string())
                .collect::<String>(),
        );
        out.push(' ');
        out.push_str(
            &t[s..e]
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        out
    });
    Ok(Some(ConnectorDdl {
        is_source,
        if_not_exists,
        name,
        table_sql,
        with,
        format,
        encode,
        encode_opts,
        time: TimeClauses::default(),
        text: sql.trim().trim_end_matches(';').trim().to_string(),
    }))
}

fn strip_comments(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn regclass_parameters_resolve_at_run_time() {
        assert_eq!(
            super::regclass_parameters(
                "a = $2::regclass AND b = CAST($10 AS REGCLASS) AND c = CAST(x AS int)"
            ),
            "a = freshet_regclass($2) AND b = freshet_regclass($10) AND c = CAST(x AS int)"
        );
    }

    #[test]
    fn watermark_clause_is_taken_out_of_the_column_list() {
        let cases = [
            (
                "CREATE TABLE t (a INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5 seconds') APPEND ONLY",
                "CREATE TABLE t (a INT, ts TIMESTAMP) ",
            ),
            (
                "CREATE TABLE t (WATERMARK FOR ts AS ts, ts TIMESTAMP) APPEND ONLY",
                "CREATE TABLE t ( ts TIMESTAMP) ",
            ),
            (
                "CREATE SOURCE s (WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND) WITH (connector = 'nexmark')",
                "CREATE SOURCE s () WITH (connector = 'nexmark')",
            ),
        ];
        for (sql, rest) in cases {
            let (out, time) = take_time_clauses(sql).unwrap();
            assert_eq!(out, rest, "{sql}");
            assert!(time.watermark.is_some(), "{sql}");
        }
        let (_, t) = take_time_clauses(cases[0].0).unwrap();
        assert_eq!(t.watermark, Some(("ts".into(), "5 seconds".into())));
        assert!(t.append_only);
        let (_, t) = take_time_clauses(cases[2].0).unwrap();
        assert_eq!(t.watermark, Some(("date_time".into(), "2 SECOND".into())));
        assert!(
            take_time_clauses("CREATE TABLE t (ts TIMESTAMP, WATERMARK FOR ts AS ts * 2)").is_err()
        );
    }
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons() {
        let s = split_statements("select 'a;b'; -- x;\n select $$c;d$$ ;; flush;");
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(matches!(parse_one(&s[2]).unwrap(), Parsed::Flush));
        assert!(split_statements(" ; -- only a comment").is_empty());
    }

    #[test]
    fn connector_ddl() {
        let p = parse_one("CREATE SOURCE IF NOT EXISTS s (id INT, v VARCHAR) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = 'h:1', scan.startup.mode='earliest') FORMAT PLAIN ENCODE CSV (without_header = 'true', delimiter = ';');").unwrap();
        let Parsed::CreateConnector(d) = p else {
            panic!("{p:?}")
        };
        assert!(d.is_source && d.if_not_exists);
        assert_eq!(d.name, "s");
        assert_eq!(
            d.with[2],
            ("properties.bootstrap.server".into(), "h:1".into())
        );
        assert_eq!(d.encode.as_deref(), Some("csv"));
        assert_eq!(d.encode_opts[1], ("delimiter".into(), ";".into()));
        assert!(d.table_sql.unwrap().starts_with("CREATE TABLE s ("));
        assert!(matches!(
            parse_one("CREATE TABLE t (a INT) WITH (x = 1)").unwrap(),
            Parsed::Sql(_)
        ));
        assert!(matches!(
            parse_one("create table t (a int, primary key (a)) with (connector='datagen')")
                .unwrap(),
            Parsed::CreateConnector(_)
        ));
        let Parsed::DropSource {
            names,
            if_exists,
            cascade,
        } = parse_one("DROP SOURCE IF EXISTS a, public.b CASCADE").unwrap()
        else {
            panic!()
        };
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
        assert!(if_exists && cascade);
    }

    #[test]
    fn exponents_expand() {
        assert_eq!(expand_exponent("1e3").as_deref(), Some("1000"));
        assert_eq!(expand_exponent("1.5e-2").as_deref(), Some("0.015"));
        assert_eq!(expand_exponent("2E10").as_deref(), Some("20000000000"));
        assert_eq!(expand_exponent("12.5e1").as_deref(), Some("125"));
        assert_eq!(expand_exponent("12"), None);
    }

    #[test]
    fn clock_times_in_intervals_get_units() {
        assert_eq!(
            interval_with_units("1 day 02:03:04").as_deref(),
            Some("1 day 02 hours 03 minutes 04 seconds")
        );
        assert_eq!(
            interval_with_units("-01:30").as_deref(),
            Some("-01 hours -30 minutes")
        );
        assert_eq!(interval_with_units("3 days"), None);
    }

    #[test]
    fn grafana_search_path_expansion_becomes_any() {
        let sql = r#"SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('bids'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('bids'))[1]
          AND quote_ident(table_name) = (parse_ident('bids'))[2]
        ELSE quote_ident(table_name) = 'bids'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END;"#;
        let Parsed::Sql(stmt) = parse_one(sql).expect("parses") else {
            panic!("not SQL");
        };
        let text = stmt.to_string();
        assert!(!text.contains("generate_series"), "{text}");
        assert!(text.contains("array_has(string_to_array("), "{text}");
    }
}
