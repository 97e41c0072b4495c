//! Errors at the server edge and their SQLSTATEs.
//!
//! Every error a client can see goes through [`ExecError::sqlstate`], which
//! maps typed errors from the planner, runtime and DataFusion to the
//! PostgreSQL codes clients and tools key off.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use freshet_planner::PlanError;
use freshet_runtime::source::SourceError;
use freshet_runtime::RuntimeError;
use pgwire::error::{ErrorInfo, PgWireError};

/// Well-known SQLSTATEs.
pub mod code {
    pub const SYNTAX: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const DEPENDENT_OBJECTS: &str = "2BP01";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_TEXT: &str = "22P02";
    pub const BAD_COPY_FORMAT: &str = "22P04";
    pub const OUT_OF_RANGE: &str = "22003";
    pub const INVALID_PARAMETER: &str = "22023";
    pub const NOT_SUPPORTED: &str = "0A000";
    pub const UNIQUE: &str = "23505";
    pub const NOT_NULL: &str = "23502";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const PREREQUISITE_STATE: &str = "55000";
    pub const INTERNAL: &str = "XX000";
    pub const CONNECTION_FAILURE: &str = "08001";
    pub const UNDEFINED_FILE: &str = "58P01";
}

/// An error while executing a statement.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// An error with an explicit SQLSTATE.
    #[error("{msg}")]
    Sql { code: &'static str, msg: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

pub type ExecResult<T> = Result<T, ExecError>;

impl ExecError {
    pub fn new(code: &'static str, msg: impl Into<String>) -> Self {
        ExecError::Sql {
            code,
            msg: msg.into(),
        }
    }

    pub fn not_supported(what: impl Into<String>) -> Self {
        ExecError::new(code::NOT_SUPPORTED, what)
    }

    /// The SQLSTATE and message the client sees.
    pub fn sqlstate(&self) -> (&'static str, String) {
        match self {
            ExecError::Sql { code, msg } => (code, msg.clone()),
            ExecError::Plan(PlanError::NotSupported(_)) => (code::NOT_SUPPORTED, self.to_string()),
            ExecError::Plan(PlanError::DataFusion(e)) => datafusion_state(e),
            ExecError::DataFusion(e) => datafusion_state(e),
            ExecError::Arrow(e) => arrow_state(e),
            ExecError::Runtime(e) => match e {
                RuntimeError::UniqueViolation { .. } => (code::UNIQUE, e.to_string()),
                RuntimeError::NotNullViolation { .. } => (code::NOT_NULL, e.to_string()),
                RuntimeError::AppendOnly(_) => (code::NOT_SUPPORTED, e.to_string()),
                RuntimeError::ViewFailed { .. } => (code::PREREQUISITE_STATE, e.to_string()),
                RuntimeError::DataFusion(d) => datafusion_state(d),
                RuntimeError::Arrow(a) => arrow_state(a),
                RuntimeError::Source(s) => (source_state(s), s.to_string()),
                _ => (code::INTERNAL, e.to_string()),
            },
        }
    }

    pub fn into_pgwire(self) -> PgWireError {
        let (code, msg) = self.sqlstate();
        PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), msg)))
    }
}

fn source_state(e: &SourceError) -> &'static str {
    match e {
        SourceError::Option(_) => code::INVALID_PARAMETER,
        SourceError::Unsupported(_) => code::NOT_SUPPORTED,
        SourceError::Connect(_) => code::CONNECTION_FAILURE,
        SourceError::Missing(_) => code::UNDEFINED_OBJECT,
        SourceError::File(_) => code::UNDEFINED_FILE,
    }
}

fn arrow_state(e: &ArrowError) -> (&'static str, String) {
    let msg = e.to_string();
    if msg.contains("too large to store in a Decimal128") {
        return (code::OUT_OF_RANGE, "numeric field overflow".into());
    }
    let code = match e {
        ArrowError::DivideByZero => code::DIVISION_BY_ZERO,
        ArrowError::CastError(m) | ArrowError::ParseError(m)
            if m.contains("Overflow") || m.contains("overflow") =>
        {
            code::OUT_OF_RANGE
        }
        ArrowError::CastError(m) if integer_out_of_range(&clean(m)).is_some() => {
            return (code::OUT_OF_RANGE, pg_message(clean(m)));
        }
        ArrowError::CastError(_) | ArrowError::ParseError(_) => code::INVALID_TEXT,
        ArrowError::ArithmeticOverflow(_) => code::OUT_OF_RANGE,
        ArrowError::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
            code::OUT_OF_RANGE
        }
        _ => code::INTERNAL,
    };
    (code, clean(&msg))
}

/// Strips DataFusion's internal prefixes from a message.
fn clean(msg: &str) -> String {
    let mut m = msg.trim();
    for p in [
        "Error during planning: ",
        "Schema error: ",
        "Arrow error: ",
        "Execution error: ",
        "Optimizer rule ",
        "SQL error: ",
        "External error: ",
        "This feature is not implemented: ",
        "Invalid argument error: ",
        "Cast error: ",
        "Parser error: ",
    ] {
        while let Some(rest) = m.strip_prefix(p) {
            m = rest.trim();
        }
    }
    m.to_string()
}

/// An integer cast of text that is a number, only too large for the type:
/// PostgreSQL's `value "..." is out of range for type integer` (22003).
fn integer_out_of_range(msg: &str) -> Option<String> {
    // A number cast to a narrower integer type.
    if let Some(rest) = msg.strip_prefix("Can't cast value ") {
        let ty = match rest.rsplit(" to type ").next()?.trim_end_matches('.') {
            "Int16" => "smallint",
            "Int32" => "integer",
            "Int64" => "bigint",
            _ => return None,
        };
        return Some(format!("{ty} out of range"));
    }
    let rest = msg.strip_prefix("Cannot cast string '")?;
    let (value, rest) = rest.split_once("' to value of ")?;
    let ty = match rest.split_whitespace().next()? {
        "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        _ => return None,
    };
    let v = value.trim();
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("value \"{value}\" is out of range for type {ty}"))
}

/// Rewrites DataFusion's messages for the common cases into PostgreSQL's wording.
fn pg_message(msg: String) -> String {
    if let Some(m) = integer_out_of_range(&msg) {
        return m;
    }
    if let Some(rest) = msg.strip_prefix("table '") {
        if let Some((name, _)) = rest.split_once("' not found") {
            let short = name.rsplit('.').next().unwrap_or(name);
            return format!("relation \"{short}\" does not exist");
        }
    }
    if let Some(rest) = msg.strip_prefix("No field named ") {
        let end = [rest.find(". "), rest.find(".\n")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('.');
        let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        return format!("column \"{name}\" does not exist");
    }
    msg
}

fn datafusion_state(e: &DataFusionError) -> (&'static str, String) {
    let root = e.find_root();
    let msg = pg_message(clean(&root.to_string()));
    let lower = msg.to_lowercase();
    let code = match root {
        DataFusionError::SQL(_, _) => code::SYNTAX,
        DataFusionError::ArrowError(a, _) => return arrow_state(a),
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound { .. } => code::UNDEFINED_COLUMN,
            SchemaError::AmbiguousReference { .. } => code::AMBIGUOUS_COLUMN,
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => code::DUPLICATE_COLUMN,
        },
        DataFusionError::NotImplemented(_) => code::NOT_SUPPORTED,
        _ if lower.contains("divide by zero") || lower.contains("division by zero") => {
            code::DIVISION_BY_ZERO
        }
        _ if lower.starts_with("relation") && lower.contains("does not exist") => {
            code::UNDEFINED_TABLE
        }
        _ if lower.starts_with("column") && lower.contains("does not exist") => {
            code::UNDEFINED_COLUMN
        }
        _ if lower.contains("table") && lower.contains("not found") => code::UNDEFINED_TABLE,
        _ if lower.contains("no field named") => code::UNDEFINED_COLUMN,
        _ if lower.contains("invalid function")
            || lower.contains("function") && lower.contains("not found") =>
        {
            code::UNDEFINED_FUNCTION
        }
        _ if lower.contains("too large to store in a decimal128") => {
            return (code::OUT_OF_RANGE, "numeric field overflow".into());
        }
        _ if lower.contains("overflow") || lower.contains("out of range") => {
            if lower.contains("date/time field") {
                "22008"
            } else {
                code::OUT_OF_RANGE
            }
        }
        _ if lower.contains("invalid input syntax for type timestamp")
            || lower.contains("invalid input syntax for type date") =>
        {
            "22007"
        }
        _ if lower.contains("cannot cast")
            || lower.contains("cannot parse")
            || lower.contains("invalid input syntax") =>
        {
            code::INVALID_TEXT
        }
        _ if lower.contains("coerc")
            || lower.contains("type mismatch")
            || lower.contains("does not support")
            || lower.contains("cannot infer common")
            || lower.contains("not comparable")
            || lower.contains("data type") =>
        {
            code::DATATYPE_MISMATCH
        }
        DataFusionError::Plan(_) => code::SYNTAX,
        DataFusionError::Execution(_) => code::INVALID_PARAMETER,
        _ => code::INTERNAL,
    };
    (code, msg)
}
