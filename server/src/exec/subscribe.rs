//! `SUBSCRIBE` through a cursor: `DECLARE c CURSOR FOR SUBSCRIBE v [WITH
//! (SNAPSHOT = false)] [AS OF epoch]`, then `FETCH n FROM c [WITH (timeout = '1s')]`.
//! Rows are `freshet_epoch`, `freshet_diff`, then the view's columns: the
//! snapshot (diff +n) at the epoch the subscription started, then each
//! committed epoch's changes, consolidated, in epoch order.

use super::*;
use datafusion::arrow::array::{ArrayRef, Int64Array, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::row::{RowConverter, SortField};
use freshet_runtime::engine::{SubscribeMsg, Subscription};
use std::time::Duration;

/// A parsed `DECLARE ... CURSOR FOR SUBSCRIBE`.
#[derive(Debug, Clone)]
pub struct DeclareSubscribe {
    pub cursor: String,
    pub view: String,
    pub snapshot: bool,
    /// `AS OF n`: resume with the changes committed after epoch n.
    pub as_of: Option<u64>,
}

/// Parses `DECLARE name [...] CURSOR [...] FOR SUBSCRIBE [TO] view [WITH
/// (SNAPSHOT = bool)]`; `None` when the cursor's query is not a SUBSCRIBE.
pub fn parse_declare_subscribe(sql: &str) -> ExecResult<Option<DeclareSubscribe>> {
    use crate::dialect::{group_end, ident, is_kw, parse_options, syntax, tokens};
    let t = tokens(sql)?;
    let Some(f) = (0..t.len()).find(|&i| is_kw(t.get(i), "for")) else {
        return Ok(None);
    };
    if !is_kw(t.get(f + 1), "subscribe") {
        return Ok(None);
    }
    let cursor = ident(t.get(1)).ok_or_else(|| syntax("expected a cursor name after DECLARE"))?;
    let mut i = f + 2;
    if is_kw(t.get(i), "to") {
        i += 1;
    }
    let mut view = ident(t.get(i)).ok_or_else(|| syntax("expected a view after SUBSCRIBE"))?;
    i += 1;
    while matches!(
        t.get(i),
        Some(datafusion::sql::sqlparser::tokenizer::Token::Period)
    ) {
        view = ident(t.get(i + 1)).ok_or_else(|| syntax("expected a name"))?;
        i += 2;
    }
    let mut snapshot = true;
    if is_kw(t.get(i), "with") {
        let end = group_end(&t, i + 1)?;
        for (k, v) in parse_options(&t[i + 2..end - 1])? {
            match k.as_str() {
                "snapshot" => {
                    snapshot = parse_bool(&v).ok_or_else(|| {
                        ExecError::new(
                            code::INVALID_PARAMETER,
                            format!("invalid value for SNAPSHOT: \"{v}\""),
                        )
                    })?
                }
                other => {
                    return Err(ExecError::new(
                        code::INVALID_PARAMETER,
                        format!("unknown SUBSCRIBE option \"{other}\" (SNAPSHOT)"),
                    ))
                }
            }
        }
        i = end;
    }
    let mut as_of = None;
    if is_kw(t.get(i), "as") && is_kw(t.get(i + 1), "of") {
        let n = match t.get(i + 2) {
            Some(datafusion::sql::sqlparser::tokenizer::Token::Number(n, _)) => n.parse().ok(),
            _ => None,
        };
        as_of = Some(n.ok_or_else(|| syntax("AS OF needs an epoch number"))?);
        i += 3;
    }
    if i < t.len() {
        return Err(syntax(format!("unexpected {} in SUBSCRIBE", t[i])));
    }
    Ok(Some(DeclareSubscribe {
        cursor,
        view,
        snapshot,
        as_of,
    }))
}

/// Splits `FETCH ... WITH (timeout = '...')` into the FETCH without the
/// clause and the timeout.
pub fn split_fetch_timeout(sql: &str) -> ExecResult<Option<(String, Duration)>> {
    let lower = sql.to_ascii_lowercase();
    let Some(at) = lower.rfind("with") else {
        return Ok(None);
    };
    let rest = sql[at + 4..].trim().trim_end_matches(';').trim();
    let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
        return Ok(None);
    };
    let (k, v) = inner.split_once('=').ok_or_else(|| {
        ExecError::new(
            code::SYNTAX,
            "syntax error: expected WITH (timeout = '...')",
        )
    })?;
    if !k.trim().eq_ignore_ascii_case("timeout") {
        return Err(ExecError::new(
            code::INVALID_PARAMETER,
            format!("unknown FETCH option \"{}\" (timeout)", k.trim()),
        ));
    }
    let v = v.trim().trim_matches('\'');
    let d = parse_timeout(v).ok_or_else(|| {
        ExecError::new(
            code::INVALID_PARAMETER,
            format!("invalid FETCH timeout \"{v}\" (use e.g. '0', '500ms', '1s')"),
        )
    })?;
    Ok(Some((sql[..at].to_string(), d)))
}

fn parse_timeout(v: &str) -> Option<Duration> {
    let v = v.trim().to_ascii_lowercase();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let n: f64 = v[..split].parse().ok()?;
    let ms = match v[split..].trim() {
        "ms" | "milliseconds" => n,
        "" | "s" | "sec" | "second" | "seconds" => n * 1000.0,
        "min" | "minute" | "minutes" => n * 60_000.0,
        _ => return None,
    };
    (ms >= 0.0 && ms.is_finite()).then(|| Duration::from_millis(ms as u64))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Some(true),
        "false" | "off" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The cursor's columns: the epoch and diff, then the view's.
fn subscribe_schema(view: &SchemaRef) -> SchemaRef {
    let mut fields = vec![
        Field::new("freshet_epoch", DataType::Int64, false),
        Field::new("freshet_diff", DataType::Int64, false),
    ];
    fields.extend(view.fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

/// One epoch's changes as cursor rows: equal rows summed, zero sums dropped.
fn epoch_rows(schema: &SchemaRef, msg: SubscribeMsg) -> ExecResult<Option<RecordBatch>> {
    let changes: Vec<_> = msg
        .changes
        .into_iter()
        .filter(|c| c.data.num_rows() > 0)
        .collect();
    let Some(first) = changes.first() else {
        return Ok(None);
    };
    let data_schema = first.data.schema();
    let batches: Vec<RecordBatch> = changes.iter().map(|c| c.data.clone()).collect();
    let data = datafusion::arrow::compute::concat_batches(&data_schema, &batches)?;
    let weights: Vec<i64> = changes
        .iter()
        .flat_map(|c| c.weights.values().iter().copied())
        .collect();
    let conv = RowConverter::new(
        data_schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?;
    let rows = conv.convert_columns(data.columns())?;
    let mut sums: std::collections::HashMap<&[u8], (usize, i64)> = Default::default();
    let mut order = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        let e = sums.entry(rows.row(i).data()).or_insert_with(|| {
            order.push(i);
            (i, 0)
        });
        e.1 += w;
    }
    let mut idx = Vec::new();
    let mut diffs = Vec::new();
    for i in order {
        let (_, w) = sums[rows.row(i).data()];
        if w != 0 {
            idx.push(i as u32);
            diffs.push(w);
        }
    }
    if idx.is_empty() {
        return Ok(None);
    }
    let idx = UInt32Array::from(idx);
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![msg.epoch.0 as i64; idx.len()])),
        Arc::new(Int64Array::from(diffs)),
    ];
    for c in data.columns() {
        cols.push(take(c.as_ref(), &idx, None)?);
    }
    Ok(Some(RecordBatch::try_new(schema.clone(), cols)?))
}

impl Server {
    pub(super) async fn declare_subscribe(
        &self,
        session: &mut Session,
        d: &DeclareSubscribe,
    ) -> ExecResult<Output> {
        let entry = self.catalog().get(&d.view).cloned().ok_or_else(|| {
            ExecError::new(
                code::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", d.view),
            )
        })?;
        if entry.rel.kind != RelKind::View {
            return Err(ExecError::new(
                code::WRONG_OBJECT_TYPE,
                format!(
                    "\"{}\" is not a materialized view (SUBSCRIBE reads one)",
                    d.view
                ),
            ));
        }
        let sub = self
            .engine
            .subscribe(
                entry.rel.id,
                d.snapshot,
                d.as_of.map(freshet_storage::Epoch),
            )
            .await?;
        session.cursors.insert(
            d.cursor.clone(),
            Cursor {
                schema: subscribe_schema(&entry.rel.schema),
                rows: Default::default(),
                sub: Some(Arc::new(tokio::sync::Mutex::new(sub))),
            },
        );
        Ok(Output::Command {
            tag: "DECLARE CURSOR",
            rows: None,
        })
    }
}

/// Moves what the subscription has received into the cursor's rows; when
/// there is nothing, waits for the next epoch (up to `timeout`, or until
/// one arrives when there is none).
pub(super) async fn fill(cursor: &mut Cursor, timeout: Option<Duration>) -> ExecResult<()> {
    let Some(sub) = cursor.sub.clone() else {
        return Ok(());
    };
    let mut sub: tokio::sync::MutexGuard<'_, Subscription> = sub.lock().await;
    let push = |cursor: &mut Cursor, msg: SubscribeMsg| -> ExecResult<()> {
        if let Some(b) = epoch_rows(&cursor.schema, msg)? {
            cursor.rows.push_back(b);
        }
        Ok(())
    };
    while let Ok(msg) = sub.rx.try_recv() {
        push(cursor, msg)?;
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    while cursor.rows.is_empty() {
        let msg = match deadline {
            Some(d) => match tokio::time::timeout_at(d, sub.rx.recv()).await {
                Ok(m) => m,
                Err(_) => break,
            },
            None => sub.rx.recv().await,
        };
        match msg {
            Some(m) => push(cursor, m)?,
            // The view was dropped.
            None => break,
        }
    }
    Ok(())
}

/// A parsed `COPY (SUBSCRIBE v [WITH (...)]) TO STDOUT [options]`.
#[derive(Debug, Clone)]
pub struct CopySubscribe {
    pub sub: DeclareSubscribe,
    pub format: crate::copy::CopyFormat,
}

/// Parses `COPY (SUBSCRIBE ...) TO STDOUT ...`; `None` for any other COPY.
pub fn parse_copy_subscribe(sql: &str) -> ExecResult<Option<CopySubscribe>> {
    let body = sql.trim().trim_end_matches(';');
    let Some(rest) = body.get(4..).map(str::trim_start) else {
        return Ok(None);
    };
    let Some(inner) = rest.strip_prefix('(') else {
        return Ok(None);
    };
    if !inner
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("subscribe")
    {
        return Ok(None);
    }
    // The SUBSCRIBE ends at the parenthesis that closes the COPY's.
    let mut depth = 1;
    let mut end = None;
    for (i, ch) in inner.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end.ok_or_else(|| crate::dialect::syntax("unbalanced parentheses in COPY"))?;
    let sub_sql = format!("DECLARE copy CURSOR FOR {}", &inner[..end]);
    let Some(sub) = parse_declare_subscribe(&sub_sql)? else {
        return Ok(None);
    };
    // The options after `TO STDOUT`, parsed by sqlparser on a stand-in query.
    let stand_in = format!("COPY (SELECT 1) {}", &inner[end + 1..]);
    let format = match crate::dialect::parse_one(&stand_in)? {
        Parsed::Sql(stmt) => match stmt.as_ref() {
            Statement::Copy {
                to: true,
                target: datafusion::sql::sqlparser::ast::CopyTarget::Stdout,
                options,
                legacy_options,
                ..
            } => crate::copy::CopyFormat::from_options(options, legacy_options)?,
            _ => {
                return Err(ExecError::not_supported(
                    "COPY (SUBSCRIBE ...) other than TO STDOUT",
                ))
            }
        },
        _ => return Err(crate::dialect::syntax("COPY (SUBSCRIBE ...)")),
    };
    Ok(Some(CopySubscribe { sub, format }))
}

/// A started `COPY (SUBSCRIBE ...)`: the feed and how to write its rows.
pub struct CopyFeed {
    pub schema: SchemaRef,
    pub format: crate::copy::CopyFormat,
    pub sub: Subscription,
}

impl CopyFeed {
    /// The copy-data lines of the next committed epoch; `None` once the
    /// view is gone.
    pub async fn next_lines(&mut self) -> ExecResult<Option<Vec<String>>> {
        loop {
            let Some(msg) = self.sub.rx.recv().await else {
                return Ok(None);
            };
            if let Some(b) = epoch_rows(&self.schema, msg)? {
                let names: Vec<String> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                return Ok(Some(self.format.lines(&names, &[b])?));
            }
        }
    }
}

impl Server {
    pub(super) async fn copy_subscribe(&self, c: &CopySubscribe) -> ExecResult<Output> {
        let entry = self.catalog().get(&c.sub.view).cloned().ok_or_else(|| {
            ExecError::new(
                code::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", c.sub.view),
            )
        })?;
        if entry.rel.kind != RelKind::View {
            return Err(ExecError::new(
                code::WRONG_OBJECT_TYPE,
                format!(
                    "\"{}\" is not a materialized view (SUBSCRIBE reads one)",
                    c.sub.view
                ),
            ));
        }
        let sub = self
            .engine
            .subscribe(
                entry.rel.id,
                c.sub.snapshot,
                c.sub.as_of.map(freshet_storage::Epoch),
            )
            .await?;
        Ok(Output::CopyFeed(Box::new(CopyFeed {
            schema: subscribe_schema(&entry.rel.schema),
            format: c.format.clone(),
            sub,
        })))
    }
}
