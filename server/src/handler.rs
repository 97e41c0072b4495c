//! The pgwire front end: simple and extended query protocol for one connection.
//!
//! Each connection gets its own [`Conn`] with its session settings. Statements
//! are parsed with [`crate::dialect`], run by [`Server::execute`] and their
//! Arrow results encoded with `arrow-pg` in text or binary as the client asks.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use futures::{stream, Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use crate::dialect::{parse_one, split_statements, Parsed};
use crate::error::{code, ExecError};
use crate::exec::{Output, Server, Session};
use crate::params;

/// One client connection.
pub struct Conn {
    server: Arc<Server>,
    session: tokio::sync::Mutex<Session>,
    parser: Arc<StmtParser>,
}

/// `COPY ... FROM STDIN`: data is gathered, then inserted at CopyDone.
#[async_trait]
impl pgwire::api::copy::CopyHandler for Conn {
    async fn on_copy_data<C>(
        &self,
        _client: &mut C,
        copy_data: pgwire::messages::copy::CopyData,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        match session.copy_in.as_mut() {
            Some(copy) => {
                copy.append(&copy_data.data);
                Ok(())
            }
            None => {
                Err(ExecError::new("08P01", "COPY data without a COPY FROM STDIN").into_pgwire())
            }
        }
    }

    async fn on_copy_done<C>(
        &self,
        client: &mut C,
        _done: pgwire::messages::copy::CopyDone,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        let (copy, flush) = {
            let mut session = self.session.lock().await;
            (session.copy_in.take(), session.implicit_flush)
        };
        let copy = copy.ok_or_else(|| {
            ExecError::new("08P01", "COPY done without a COPY FROM STDIN").into_pgwire()
        })?;
        let n = guarded(self.server.finish_copy_in(copy, flush))
            .await
            .map_err(ExecError::into_pgwire)?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(n).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(
        &self,
        _client: &mut C,
        fail: pgwire::messages::copy::CopyFail,
    ) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.lock().await.copy_in = None;
        ExecError::new("57014", format!("COPY from stdin failed: {}", fail.message)).into_pgwire()
    }
}

impl Drop for Conn {
    /// The session ends: its temporary tables go.
    fn drop(&mut self) {
        let tables = std::mem::take(&mut self.session.get_mut().temp_tables);
        if tables.is_empty() {
            return;
        }
        let server = self.server.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = server.drop_temporary(tables).await {
                    tracing::warn!(error = %e, "dropping a session's temporary tables failed");
                }
            });
        }
    }
}

/// Builds the handlers for one connection.
pub struct ConnHandlers(Arc<Conn>, Arc<crate::auth::Startup>);

impl ConnHandlers {
    pub fn new(server: Arc<Server>) -> Self {
        let startup = Arc::new(crate::auth::Startup::new(&server.users));
        ConnHandlers(
            Arc::new(Conn {
                server,
                session: Default::default(),
                parser: Arc::new(StmtParser),
            }),
            startup,
        )
    }
}

impl PgWireServerHandlers for ConnHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.1.clone()
    }
}

/// A statement prepared with Parse.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub parsed: Parsed,
}

pub struct StmtParser;

#[async_trait]
impl QueryParser for StmtParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let stmts = split_statements(sql);
        match stmts.len() {
            0 => Ok(None),
            1 => {
                let mut parsed = parse_one(&stmts[0]).map_err(ExecError::into_pgwire)?;
                if let Parsed::Sql(stmt) = &mut parsed {
                    params::type_selected_placeholders(stmt, types);
                }
                Ok(Some(Prepared { parsed }))
            }
            _ => Err(ExecError::new(
                code::SYNTAX,
                "cannot insert multiple commands into a prepared statement",
            )
            .into_pgwire()),
        }
    }

    fn get_parameter_types(&self, _stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(vec![])
    }

    fn get_result_schema(
        &self,
        _stmt: &Prepared,
        _format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(vec![])
    }
}

fn pg_fields(schema: &SchemaRef, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let fields = arrow_pg::datatypes::arrow_schema_to_pg_fields(
        &crate::pgtext::pg_schema(schema),
        format,
        None,
    )?;
    // jsonb columns are text marked jsonb.
    Ok(fields
        .into_iter()
        .zip(schema.fields())
        .map(|(fi, f)| {
            if freshet_planner::pg::jsonb::is_jsonb(f) {
                FieldInfo::new(
                    fi.name().to_string(),
                    fi.table_id(),
                    fi.column_id(),
                    pgwire::api::Type::JSONB,
                    fi.format(),
                )
            } else {
                fi
            }
        })
        .collect())
}

fn to_response(out: Output, format: &Format) -> PgWireResult<Response> {
    Ok(match out {
        Output::Rows { schema, batches } => {
            let fields = Arc::new(pg_fields(&schema, format)?);
            let f2 = fields.clone();
            let text: Vec<bool> = fields
                .iter()
                .map(|f| f.format() == pgwire::api::results::FieldFormat::Text)
                .collect();
            let rows = stream::iter(batches).flat_map(move |b| {
                let b = crate::pgtext::pg_signed_batch(b);
                let b = crate::pgtext::jsonb_binary(b, &f2);
                let b = crate::pgtext::pg_text_batch(b, |i| text.get(i).copied().unwrap_or(true));
                stream::iter(arrow_pg::encode_recordbatch(f2.clone(), b))
            });
            Response::Query(QueryResponse::new(fields, rows))
        }
        Output::Command { tag, rows } => {
            let mut t = Tag::new(tag);
            if tag == "INSERT" {
                t = t.with_oid(0);
            }
            if let Some(n) = rows {
                t = t.with_rows(n);
            }
            Response::Execution(t)
        }
        Output::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Output::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        Output::CopyOut { columns, lines } => {
            use pgwire::api::results::CopyResponse;
            use pgwire::messages::copy::CopyData;
            let data = stream::iter(
                lines
                    .into_iter()
                    .map(|l| Ok(CopyData::new(bytes::Bytes::from(l.into_bytes())))),
            );
            Response::CopyOut(CopyResponse::new(0, columns, data))
        }
        Output::CopyFeed(_) => {
            return Err(ExecError::not_supported(
                "COPY (SUBSCRIBE ...) through the extended query protocol (send it as a simple query, as psql does)",
            )
            .into_pgwire())
        }
        Output::CopyIn { columns } => {
            use pgwire::api::results::CopyResponse;
            Response::CopyIn(CopyResponse::new(
                0,
                columns,
                stream::empty::<PgWireResult<pgwire::messages::copy::CopyData>>(),
            ))
        }
    })
}

/// Runs a statement, turning a panic inside it (a bug, in Freshet or in a
/// library) into an internal error (XX000) for this statement instead of a
/// dropped connection.
async fn guarded<T>(
    f: impl std::future::Future<Output = Result<T, ExecError>>,
) -> Result<T, ExecError> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!("statement panicked: {msg}");
            Err(ExecError::new(
                code::INTERNAL,
                format!("internal error: {msg}"),
            ))
        }
    }
}

fn error_response(e: ExecError) -> Response {
    let (code, msg) = e.sqlstate();
    if code == crate::error::code::INTERNAL {
        tracing::warn!("internal error: {msg}");
    }
    Response::Error(Box::new(ErrorInfo::new("ERROR".into(), code.into(), msg)))
}

#[async_trait]
impl SimpleQueryHandler for Conn {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut out = Vec::new();
        let mut session = self.session.lock().await;
        session.remember_user(client.metadata().get("user"));
        for sql in split_statements(query) {
            let result = match parse_one(&sql) {
                Ok(parsed) => guarded(self.server.execute(&mut session, &parsed, None)).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(Output::CopyFeed(feed)) => {
                    if !out.is_empty() {
                        out.push(error_response(ExecError::not_supported(
                            "COPY (SUBSCRIBE ...) after other statements in one query string",
                        )));
                        break;
                    }
                    out.push(stream_copy_feed(client, *feed).await?);
                    break;
                }
                Ok(o) => out.push(to_response(o, &Format::UnifiedText)?),
                Err(e) => {
                    out.push(error_response(e));
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(Response::EmptyQuery);
        }
        Ok(out)
    }
}

/// Decodes bound parameters: a type the client declared in Parse wins (as
/// in PostgreSQL), otherwise the type the plan infers.
fn decode_params(
    portal: &Portal<Prepared>,
    inferred: &[Option<DataType>],
) -> PgWireResult<ParamValues> {
    let mut values = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let declared = portal
            .statement
            .parameter_types
            .get(i)
            .cloned()
            .flatten()
            .filter(|t| t.oid() != 0 && *t != Type::UNKNOWN);
        let declared_arrow = declared.as_ref().and_then(params::arrow_type);
        let inferred = inferred.get(i).cloned().flatten();
        let want = declared_arrow.clone().or_else(|| inferred.clone());
        let bad = |e: params::ParamError| {
            ExecError::new(
                code::INVALID_TEXT,
                format!("invalid input for parameter ${}: {e}", i + 1),
            )
            .into_pgwire()
        };
        let v = match portal.parameters.get(i).cloned().flatten() {
            None => {
                ScalarValue::try_from(want.clone().unwrap_or(DataType::Utf8)).map_err(df_err)?
            }
            Some(bytes) if portal.parameter_format.is_binary(i) => {
                let ty = declared
                    .or_else(|| {
                        want.as_ref()
                            .and_then(|t| arrow_pg::datatypes::into_pg_type(t).ok())
                    })
                    .unwrap_or(Type::TEXT);
                params::from_binary(&bytes, &ty).map_err(bad)?
            }
            Some(bytes) => {
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    ExecError::new(code::INVALID_TEXT, "parameter is not valid UTF-8").into_pgwire()
                })?;
                params::from_text(text, want.as_ref()).map_err(bad)?
            }
        };
        // Without a declared type the value takes the inferred one exactly.
        let v = match &inferred {
            Some(t) if declared_arrow.is_none() && &v.data_type() != t => v
                .cast_to(t)
                .map_err(|e| bad(params::ParamError(e.to_string())))?,
            _ => v,
        };
        values.push(v);
    }
    Ok(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))
}

fn df_err(e: datafusion::error::DataFusionError) -> PgWireError {
    ExecError::from(e).into_pgwire()
}

#[async_trait]
impl ExtendedQueryHandler for Conn {
    type Statement = Prepared;
    type QueryParser = StmtParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (types, schema) = self
            .server
            .describe(&target.statement.parsed)
            .await
            .map_err(ExecError::into_pgwire)?;
        let n = types.len().max(target.parameter_types.len());
        let oid_casts = match &target.statement.parsed {
            Parsed::Sql(stmt) => params::oid_casts(stmt),
            _ => Default::default(),
        };
        let params: Vec<Type> = (0..n)
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| t.oid() != 0)
                    .or_else(|| oid_casts.get(&(i + 1)).cloned())
                    .or_else(|| {
                        types
                            .get(i)
                            .cloned()
                            .flatten()
                            .and_then(|t| arrow_pg::datatypes::into_pg_type(&t).ok())
                    })
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect();
        let fields = match schema {
            Some(s) => pg_fields(&s, &Format::UnifiedText)?,
            None => vec![],
        };
        if params.is_empty() && fields.is_empty() {
            return Ok(DescribeStatementResponse::no_data());
        }
        Ok(DescribeStatementResponse::new(params, fields))
    }

    /// Like pgwire's default, except that a statement with parameters but no
    /// result columns (an `INSERT ... VALUES ($1)`) answers ParameterDescription
    /// then NoData, as PostgreSQL does; drivers such as pgjdbc rely on it.
    async fn on_describe<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Describe,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        use pgwire::messages::data::{NoData, ParameterDescription};
        if message.target_type == b'S' {
            let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
            if let Some(pgwire::api::store::Entry::Value(stmt)) =
                client.portal_store().get_statement(name)
            {
                let resp = self.do_describe_statement(client, &stmt).await?;
                if resp.fields.is_empty() && !resp.parameters.is_empty() {
                    let oids = resp.parameters.iter().map(|t| t.oid()).collect();
                    client
                        .send(PgWireBackendMessage::ParameterDescription(
                            ParameterDescription::new(oids),
                        ))
                        .await?;
                    client
                        .send(PgWireBackendMessage::NoData(NoData::new()))
                        .await?;
                    return Ok(());
                }
            }
        }
        if message.target_type == b'P' {
            let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
            if client.portal_store().get_portal(name).is_none() {
                // A cursor opened with DECLARE (psycopg's server cursors
                // describe it as a portal before fetching).
                let schema = {
                    let session = self.session.lock().await;
                    session
                        .cursors
                        .get(name)
                        .or_else(|| session.cursors.get(&crate::exec::normalize_ident(name)))
                        .map(|c| c.schema.clone())
                };
                if let Some(schema) = schema {
                    use pgwire::messages::data::{FieldDescription, RowDescription};
                    let fields = pg_fields(&schema, &Format::UnifiedText)?;
                    let fields: Vec<FieldDescription> = fields.iter().map(Into::into).collect();
                    client
                        .send(PgWireBackendMessage::RowDescription(RowDescription::new(
                            fields,
                        )))
                        .await?;
                    return Ok(());
                }
            }
        }
        self._on_describe(client, message).await
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (_, schema) = self
            .server
            .describe(&portal.statement.statement.parsed)
            .await
            .map_err(ExecError::into_pgwire)?;
        match schema {
            Some(s) => Ok(DescribePortalResponse::new(pg_fields(
                &s,
                &portal.result_column_format,
            )?)),
            None => Ok(DescribePortalResponse::no_data()),
        }
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let parsed = &portal.statement.statement.parsed;
        let params = if portal.parameter_len() > 0 {
            let (types, _) = self
                .server
                .describe(parsed)
                .await
                .map_err(ExecError::into_pgwire)?;
            Some(decode_params(portal, &types)?)
        } else {
            None
        };
        let mut session = self.session.lock().await;
        session.remember_user(client.metadata().get("user"));
        match guarded(self.server.execute(&mut session, parsed, params)).await {
            Ok(o) => to_response(o, &portal.result_column_format),
            Err(e) => Err(e.into_pgwire()),
        }
    }
}

/// Writes a `COPY (SUBSCRIBE ...)` to the client as it happens: each epoch's
/// rows are sent and flushed when they commit (pgwire's own copy-out path
/// buffers until the end, which a subscription never reaches). Ends when
/// the view is dropped; a client that goes away ends it with an error.
async fn stream_copy_feed<C>(
    client: &mut C,
    mut feed: crate::exec::subscribe::CopyFeed,
) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use futures::SinkExt;
    use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
    let columns = feed.schema.fields().len();
    client
        .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            0,
            columns as i16,
            vec![0; columns],
        )))
        .await?;
    let mut rows = 0usize;
    loop {
        match feed.next_lines().await {
            Ok(Some(lines)) => {
                for l in lines {
                    rows += 1;
                    client
                        .feed(PgWireBackendMessage::CopyData(CopyData::new(
                            bytes::Bytes::from(l.into_bytes()),
                        )))
                        .await?;
                }
                client.flush().await?;
            }
            Ok(None) => break,
            Err(e) => return Err(e.into_pgwire()),
        }
    }
    client
        .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(Response::Execution(Tag::new("COPY").with_rows(rows)))
}
