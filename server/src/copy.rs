//! `COPY ... TO STDOUT` and `COPY table FROM STDIN`: rows in PostgreSQL's
//! text or CSV copy format, written out or read in.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::sql::sqlparser::ast::{CopyLegacyOption, CopyOption};

use crate::error::{code, ExecError, ExecResult};

/// How rows are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    csv: bool,
    delimiter: char,
    null: String,
    header: bool,
    quote: char,
}

impl CopyFormat {
    /// The format given by `COPY ... WITH (...)` and the legacy options.
    pub fn from_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> ExecResult<Self> {
        let mut csv = false;
        let (mut delimiter, mut null, mut header, mut quote) = (None, None, false, '"');
        for o in options {
            match o {
                CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                    "text" => csv = false,
                    "csv" => csv = true,
                    "binary" => {
                        return Err(ExecError::not_supported(
                            "COPY in binary format is not supported",
                        ))
                    }
                    other => {
                        return Err(ExecError::new(
                            code::INVALID_PARAMETER,
                            format!("COPY format \"{other}\" not recognized"),
                        ))
                    }
                },
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = *c,
                other => {
                    return Err(ExecError::not_supported(format!(
                        "COPY option {other} is not supported"
                    )))
                }
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Binary => {
                    return Err(ExecError::not_supported(
                        "COPY in binary format is not supported",
                    ))
                }
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Csv(opts) => {
                    csv = true;
                    for c in opts {
                        use datafusion::sql::sqlparser::ast::CopyLegacyCsvOption as C;
                        match c {
                            C::Header => header = true,
                            C::Quote(q) => quote = *q,
                            other => {
                                return Err(ExecError::not_supported(format!(
                                    "COPY CSV option {other} is not supported"
                                )))
                            }
                        }
                    }
                }
                other => {
                    return Err(ExecError::not_supported(format!(
                        "COPY option {other} is not supported"
                    )))
                }
            }
        }
        Ok(CopyFormat {
            csv,
            delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            header,
            quote,
        })
    }

    /// Each row as one line of copy data, with a header line first if asked.
    pub fn lines(&self, names: &[String], batches: &[RecordBatch]) -> ExecResult<Vec<String>> {
        let mut out = Vec::new();
        if self.header && self.csv {
            let cells: Vec<String> = names.iter().map(|n| self.csv_cell(n, false)).collect();
            out.push(self.join(cells));
        }
        for b in batches {
            let b = crate::pgtext::pg_text_batch(b.clone(), |_| true);
            let cols: Vec<Vec<Option<String>>> = b
                .columns()
                .iter()
                .map(text_values)
                .collect::<ExecResult<_>>()?;
            for row in 0..b.num_rows() {
                let cells = cols
                    .iter()
                    .map(|c| match &c[row] {
                        None => self.null.clone(),
                        Some(v) if self.csv => self.csv_cell(v, v == &self.null),
                        Some(v) => escape_text(v, self.delimiter),
                    })
                    .collect();
                out.push(self.join(cells));
            }
        }
        Ok(out)
    }

    fn join(&self, cells: Vec<String>) -> String {
        let mut line = cells.join(&self.delimiter.to_string());
        line.push('\n');
        line
    }

    fn csv_cell(&self, v: &str, force: bool) -> String {
        let needs = force
            || v.is_empty()
            || v.contains(self.delimiter)
            || v.contains(self.quote)
            || v.contains(['\n', '\r']);
        if !needs {
            return v.to_string();
        }
        let q = self.quote.to_string();
        format!("{q}{}{q}", v.replace(&q, &format!("{q}{q}")))
    }
}

impl CopyFormat {
    /// The fields of each row of copy data sent by a client (`None` for
    /// NULL), after the header line if there is one.
    pub fn parse(&self, data: &[u8]) -> ExecResult<Vec<Vec<Option<String>>>> {
        let text = std::str::from_utf8(data)
            .map_err(|_| ExecError::new(code::INVALID_TEXT, "COPY data is not valid UTF-8"))?;
        let mut rows = if self.csv {
            self.parse_csv(text)?
        } else {
            self.parse_text(text)?
        };
        if self.header && !rows.is_empty() {
            rows.remove(0);
        }
        Ok(rows)
    }

    fn parse_text(&self, text: &str) -> ExecResult<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        for line in text.split_terminator('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line == "\\." {
                break;
            }
            let mut fields = Vec::new();
            let mut field = String::new();
            let mut raw = String::new();
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if c == self.delimiter {
                    fields.push(self.text_field(&field, &raw));
                    field.clear();
                    raw.clear();
                    continue;
                }
                raw.push(c);
                if c != '\\' {
                    field.push(c);
                    continue;
                }
                let Some(e) = chars.next() else {
                    break;
                };
                raw.push(e);
                match e {
                    'b' => field.push('\u{8}'),
                    'f' => field.push('\u{c}'),
                    'n' => field.push('\n'),
                    'r' => field.push('\r'),
                    't' => field.push('\t'),
                    'v' => field.push('\u{b}'),
                    'x' => {
                        let mut v = 0u32;
                        let mut n = 0;
                        while n < 2 {
                            match chars.peek().and_then(|c| c.to_digit(16)) {
                                Some(d) => {
                                    v = v * 16 + d;
                                    raw.push(chars.next().unwrap_or('0'));
                                    n += 1;
                                }
                                None => break,
                            }
                        }
                        if n == 0 {
                            field.push('x');
                        } else {
                            field.push(char::from_u32(v).unwrap_or('?'));
                        }
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.peek().and_then(|c| c.to_digit(8)) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    raw.push(chars.next().unwrap_or('0'));
                                }
                                None => break,
                            }
                        }
                        field.push(char::from_u32(v).unwrap_or('?'));
                    }
                    other => field.push(other),
                }
            }
            fields.push(self.text_field(&field, &raw));
            rows.push(fields);
        }
        Ok(rows)
    }

    /// A text-format field: NULL when its raw text is the NULL marker.
    fn text_field(&self, field: &str, raw: &str) -> Option<String> {
        (raw != self.null).then(|| field.to_string())
    }

    fn parse_csv(&self, text: &str) -> ExecResult<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        let mut fields: Vec<Option<String>> = Vec::new();
        let mut field = String::new();
        let (mut quoted, mut in_quotes, mut any) = (false, false, false);
        let mut chars = text.chars().peekable();
        let end_field =
            |field: &mut String, quoted: &mut bool, fields: &mut Vec<Option<String>>| {
                let v = if !*quoted && *field == self.null {
                    None
                } else {
                    Some(std::mem::take(field))
                };
                field.clear();
                *quoted = false;
                fields.push(v);
            };
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == self.quote {
                    if chars.peek() == Some(&self.quote) {
                        chars.next();
                        field.push(c);
                    } else {
                        in_quotes = false;
                    }
                } else {
                    field.push(c);
                }
                continue;
            }
            any = true;
            if c == self.quote {
                in_quotes = true;
                quoted = true;
            } else if c == self.delimiter {
                end_field(&mut field, &mut quoted, &mut fields);
            } else if c == '\n' || c == '\r' {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                if fields.is_empty() && field == "\\." && !quoted {
                    return Ok(rows);
                }
                end_field(&mut field, &mut quoted, &mut fields);
                rows.push(std::mem::take(&mut fields));
                any = false;
            } else {
                field.push(c);
            }
        }
        if in_quotes {
            return Err(ExecError::new(
                code::BAD_COPY_FORMAT,
                "unterminated CSV quoted field",
            ));
        }
        if any && !(fields.is_empty() && field == "\\.") {
            end_field(&mut field, &mut quoted, &mut fields);
            rows.push(fields);
        }
        Ok(rows)
    }
}

/// Text format escapes: backslash, the delimiter, newline, CR and tab.
fn escape_text(v: &str, delimiter: char) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if c == delimiter => {
                s.push('\\');
                s.push(c);
            }
            c => s.push(c),
        }
    }
    s
}

/// PostgreSQL's text form of each value of a column (`None` for NULL).
fn text_values(col: &ArrayRef) -> ExecResult<Vec<Option<String>>> {
    let internal = |e: datafusion::arrow::error::ArrowError| {
        ExecError::new(code::INTERNAL, format!("COPY: {e}"))
    };
    let n = col.len();
    let mut out = Vec::with_capacity(n);
    match col.data_type() {
        DataType::Boolean => {
            let a = col.as_boolean();
            for i in 0..n {
                out.push(
                    a.is_valid(i)
                        .then(|| if a.value(i) { "t" } else { "f" }.to_string()),
                );
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())
                .map_err(internal)?;
            for i in 0..n {
                // Arrow shows bytes as hex; PostgreSQL prefixes it with \x.
                out.push(col.is_valid(i).then(|| format!("\\x{}", f.value(i))));
            }
        }
        DataType::List(_) | DataType::LargeList(_) => {
            for i in 0..n {
                if col.is_null(i) {
                    out.push(None);
                    continue;
                }
                let item = match col.data_type() {
                    DataType::List(_) => col.as_list::<i32>().value(i),
                    _ => col.as_list::<i64>().value(i),
                };
                let item = crate::pgtext::pg_text_batch(
                    RecordBatch::try_from_iter([("v", item)]).map_err(internal)?,
                    |_| true,
                );
                let vals = text_values(item.column(0))?;
                let parts: Vec<String> = vals
                    .into_iter()
                    .map(|v| match v {
                        None => "NULL".to_string(),
                        Some(s)
                            if s.is_empty()
                                || s.eq_ignore_ascii_case("null")
                                || s.contains([',', '{', '}', '"', '\\', ' ']) =>
                        {
                            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                        }
                        Some(s) => s,
                    })
                    .collect();
                out.push(Some(format!("{{{}}}", parts.join(","))));
            }
        }
        _ => {
            let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())
                .map_err(internal)?;
            for i in 0..n {
                out.push(col.is_valid(i).then(|| f.value(i).to_string()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, Int64Array, StringArray};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(StringArray::from(vec![Some("x\ty"), Some("q,\"r\"")])) as ArrayRef,
            ),
            (
                "c",
                Arc::new(BooleanArray::from(vec![true, false])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn text_format_escapes_and_nulls() {
        let f = CopyFormat::from_options(&[], &[]).unwrap();
        let lines = f.lines(&[], &[batch()]).unwrap();
        assert_eq!(lines, vec!["1\tx\\ty\tt\n", "\\N\tq,\"r\"\tf\n"]);
    }

    #[test]
    fn text_input_unescapes_and_reads_nulls() {
        let f = CopyFormat::from_options(&[], &[]).unwrap();
        let rows = f
            .parse(b"1\ta\\tb\t\\N\n2\t\\x41\\101\t\n\\.\nignored\n")
            .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a\tb".into()), None],
                vec![Some("2".into()), Some("AA".into()), Some("".into())],
            ]
        );
    }

    #[test]
    fn csv_input_quotes_newlines_header() {
        let f = CopyFormat::from_options(
            &[CopyOption::Format("csv".into()), CopyOption::Header(true)],
            &[],
        )
        .unwrap();
        let rows = f
            .parse(b"a,b,c\r\n1,\"x,\"\"y\"\"\nz\",\n2,\"\",q")
            .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("x,\"y\"\nz".into()), None],
                vec![Some("2".into()), Some("".into()), Some("q".into())],
            ]
        );
        assert!(f.parse(b"a\n\"open").is_err());
    }

    #[test]
    fn csv_with_header_quotes() {
        let f = CopyFormat::from_options(
            &[CopyOption::Format("csv".into()), CopyOption::Header(true)],
            &[],
        )
        .unwrap();
        let names = vec!["a".to_string(), "b".into(), "c".into()];
        let lines = f.lines(&names, &[batch()]).unwrap();
        assert_eq!(lines, vec!["a,b,c\n", "1,x\ty,t\n", ",\"q,\"\"r\"\"\",f\n"]);
    }
}
