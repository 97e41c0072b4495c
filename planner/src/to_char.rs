//! PostgreSQL's `to_char(timestamp | timestamptz | date, text)`: template
//! patterns (`YYYY-MM-DD HH24:MI:SS.MS`, `FMMonth`, `Dy`, `"quoted"` text)
//! rendered a batch at a time. It replaces DataFusion's `to_char`, which
//! takes chrono's `%Y` patterns and prints PostgreSQL templates verbatim.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, not_impl_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `to_char` as a DataFusion function.
pub fn to_char_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ToChar {
        signature: Signature::any(2, Volatility::Immutable),
        aliases: vec!["date_format".to_string()],
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    signature: Signature,
    aliases: Vec<String>,
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// DataFusion's `to_char` answers to `date_format` too: taking that
    /// name as well leaves no path to it (a session state rebuilt from its
    /// functions would otherwise bring it back under `to_char`).
    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null,
            ) => Ok(DataType::Utf8),
            Some(other) => not_impl_err!(
                "to_char({other}, text) is not supported; to_char takes a timestamp or a date"
            ),
            None => exec_err!("to_char takes two arguments"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, format] = args.args.as_slice() else {
            return exec_err!("to_char takes two arguments");
        };
        let n = args.number_rows;
        // One template for the batch (the usual case) is parsed once.
        let fixed = match format {
            ColumnarValue::Scalar(s) => Some(scalar_text(s).map(|t| parse(&t))),
            ColumnarValue::Array(_) => None,
        };
        let values = value.to_array(n)?;
        let micros = to_micros(&values)?;
        let formats: Option<StringArray> = match format {
            ColumnarValue::Array(a) => Some(cast(a, &DataType::Utf8)?.as_string::<i32>().clone()),
            ColumnarValue::Scalar(_) => None,
        };
        let mut out = StringBuilder::with_capacity(micros.len(), micros.len() * 16);
        for (i, v) in micros.iter().enumerate() {
            let toks = match (&fixed, &formats) {
                (Some(Some(t)), _) => Some(std::borrow::Cow::Borrowed(t)),
                (Some(None), _) => None,
                (None, Some(f)) => f
                    .is_valid(i)
                    .then(|| std::borrow::Cow::Owned(parse(f.value(i)))),
                (None, None) => None,
            };
            match (v, toks, v.and_then(datetime)) {
                (Some(_), Some(toks), Some(dt)) => {
                    render(&toks, &dt, &mut out);
                    out.append_value("");
                }
                _ => out.append_null(),
            }
        }
        let out: ArrayRef = Arc::new(out.finish());
        Ok(
            if values.len() == 1 && matches!(value, ColumnarValue::Scalar(_)) {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
            } else {
                ColumnarValue::Array(out)
            },
        )
    }
}

fn scalar_text(s: &ScalarValue) -> Option<String> {
    match s {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.clone(),
        ScalarValue::Null => None,
        other => Some(other.to_string()),
    }
}

/// The values as microseconds since the epoch (UTC wall time).
fn to_micros(a: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let a = match a.data_type() {
        DataType::Null => return Ok(vec![None; a.len()]),
        DataType::Date32 | DataType::Date64 => {
            cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => a.clone(),
        DataType::Timestamp(_, _) => cast(
            &cast(
                a,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            )?,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?,
        other => return not_impl_err!("to_char({other}, text) is not supported"),
    };
    let p = a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    Ok(p.iter().collect())
}

fn datetime(us: i64) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.naive_utc())
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Lit(String),
    /// A field, and whether `FM` (no padding) precedes it.
    Field(Field, bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Case {
    Upper,
    Title,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field {
    Hh24,
    Hh12,
    Mi,
    Ss,
    Ms,
    Us,
    Ssss,
    /// `AM`/`PM` (`dots`: `A.M.`), in a case.
    Meridiem(Case, bool),
    YyyyComma,
    Yyyy,
    Yyy,
    Yy,
    Y,
    Iyyy,
    Cc,
    MonthName(Case),
    MonAbbr(Case),
    Mm,
    DayName(Case),
    DayAbbr(Case),
    Ddd,
    Dd,
    D,
    Id,
    Ww,
    Iw,
    W,
    Q,
    J,
    Tz(Case),
}

/// Patterns, longest first where one is a prefix of another. Numeric
/// patterns match in any case; names follow the case they are written in.
const PATTERNS: &[(&str, bool)] = &[
    // (pattern, case-sensitive)
    ("HH24", false),
    ("HH12", false),
    ("HH", false),
    ("MI", false),
    ("SSSS", false),
    ("SS", false),
    ("MS", false),
    ("US", false),
    ("A.M.", true),
    ("P.M.", true),
    ("a.m.", true),
    ("p.m.", true),
    ("AM", true),
    ("PM", true),
    ("am", true),
    ("pm", true),
    ("Y,YYY", false),
    ("YYYY", false),
    ("YYY", false),
    ("YY", false),
    ("IYYY", false),
    ("Y", false),
    ("CC", false),
    ("MONTH", true),
    ("Month", true),
    ("month", true),
    ("MON", true),
    ("Mon", true),
    ("mon", true),
    ("MM", false),
    ("DAY", true),
    ("Day", true),
    ("day", true),
    ("DY", true),
    ("Dy", true),
    ("dy", true),
    ("DDD", false),
    ("DD", false),
    ("ID", false),
    ("D", false),
    ("WW", false),
    ("IW", false),
    ("W", false),
    ("Q", false),
    ("J", false),
    ("TZ", true),
    ("tz", true),
];

fn field(p: &str) -> Field {
    use Case::*;
    match p {
        "HH24" => Field::Hh24,
        "HH12" | "HH" => Field::Hh12,
        "MI" => Field::Mi,
        "SSSS" => Field::Ssss,
        "SS" => Field::Ss,
        "MS" => Field::Ms,
        "US" => Field::Us,
        "A.M." | "P.M." => Field::Meridiem(Upper, true),
        "a.m." | "p.m." => Field::Meridiem(Lower, true),
        "AM" | "PM" => Field::Meridiem(Upper, false),
        "am" | "pm" => Field::Meridiem(Lower, false),
        "Y,YYY" => Field::YyyyComma,
        "YYYY" => Field::Yyyy,
        "YYY" => Field::Yyy,
        "YY" => Field::Yy,
        "IYYY" => Field::Iyyy,
        "Y" => Field::Y,
        "CC" => Field::Cc,
        "MONTH" => Field::MonthName(Upper),
        "Month" => Field::MonthName(Title),
        "month" => Field::MonthName(Lower),
        "MON" => Field::MonAbbr(Upper),
        "Mon" => Field::MonAbbr(Title),
        "mon" => Field::MonAbbr(Lower),
        "MM" => Field::Mm,
        "DAY" => Field::DayName(Upper),
        "Day" => Field::DayName(Title),
        "day" => Field::DayName(Lower),
        "DY" => Field::DayAbbr(Upper),
        "Dy" => Field::DayAbbr(Title),
        "dy" => Field::DayAbbr(Lower),
        "DDD" => Field::Ddd,
        "DD" => Field::Dd,
        "ID" => Field::Id,
        "D" => Field::D,
        "WW" => Field::Ww,
        "IW" => Field::Iw,
        "W" => Field::W,
        "Q" => Field::Q,
        "J" => Field::J,
        "tz" => Field::Tz(Lower),
        _ => Field::Tz(Upper),
    }
}

/// Parses a template into pieces.
pub(crate) fn parse(t: &str) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    let mut lit = String::new();
    let mut rest = t;
    let mut fm = false;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            // Quoted text, with \" for a quote.
            let mut it = rest[1..].char_indices();
            let mut end = rest.len();
            while let Some((i, ch)) = it.next() {
                match ch {
                    '\\' => {
                        if let Some((_, n)) = it.next() {
                            lit.push(n);
                        }
                    }
                    '"' => {
                        end = i + 2;
                        break;
                    }
                    other => lit.push(other),
                }
            }
            rest = &rest[end.min(rest.len())..];
            continue;
        }
        if c == '\\' && rest.len() > 1 {
            let n = rest[1..].chars().next().unwrap_or('\\');
            lit.push(n);
            rest = &rest[1 + n.len_utf8()..];
            continue;
        }
        if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("FM") {
            fm = true;
            rest = &rest[2..];
            continue;
        }
        let hit = PATTERNS.iter().find(|(p, sensitive)| {
            rest.len() >= p.len()
                && rest.is_char_boundary(p.len())
                && if *sensitive {
                    &rest[..p.len()] == *p
                } else {
                    rest[..p.len()].eq_ignore_ascii_case(p)
                }
        });
        match hit {
            Some((p, _)) => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(Tok::Field(field(p), fm));
                fm = false;
                rest = &rest[p.len()..];
            }
            None => {
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn name(out: &mut StringBuilder, s: &str, case: Case, pad: Option<usize>) {
    // Names are ASCII: cased a character at a time, no allocation per row.
    for c in s.chars() {
        let _ = out.write_char(match case {
            Case::Upper => c.to_ascii_uppercase(),
            Case::Title => c,
            Case::Lower => c.to_ascii_lowercase(),
        });
    }
    if let Some(w) = pad {
        for _ in s.len()..w {
            let _ = out.write_char(' ');
        }
    }
}

fn num(out: &mut StringBuilder, v: i64, width: usize, fm: bool) {
    let _ = if fm {
        write!(out, "{v}")
    } else {
        write!(out, "{v:0width$}")
    };
}

/// Writes one value in the template's form.
fn render(toks: &[Tok], t: &NaiveDateTime, out: &mut StringBuilder) {
    for tok in toks {
        let (f, fm) = match tok {
            Tok::Lit(s) => {
                let _ = out.write_str(s);
                continue;
            }
            Tok::Field(f, fm) => (*f, *fm),
        };
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let year = t.year() as i64;
        match f {
            Field::Hh24 => num(out, t.hour() as i64, 2, fm),
            Field::Hh12 => num(out, hour12 as i64, 2, fm),
            Field::Mi => num(out, t.minute() as i64, 2, fm),
            Field::Ss => num(out, t.second() as i64, 2, fm),
            Field::Ms => num(out, (t.nanosecond() / 1_000_000) as i64, 3, fm),
            Field::Us => num(out, (t.nanosecond() / 1_000) as i64, 6, fm),
            Field::Ssss => num(out, t.num_seconds_from_midnight() as i64, 1, true),
            Field::Meridiem(case, dots) => {
                let s = match (t.hour() < 12, dots) {
                    (true, false) => "AM",
                    (false, false) => "PM",
                    (true, true) => "A.M.",
                    (false, true) => "P.M.",
                };
                name(
                    out,
                    s,
                    if case == Case::Lower {
                        Case::Lower
                    } else {
                        Case::Upper
                    },
                    None,
                )
            }
            Field::YyyyComma => {
                let _ = write!(out, "{},{:03}", year / 1000, year % 1000);
            }
            Field::Yyyy => num(out, year, 4, fm),
            Field::Yyy => num(out, year % 1000, 3, fm),
            Field::Yy => num(out, year % 100, 2, fm),
            Field::Y => num(out, year % 10, 1, fm),
            Field::Iyyy => num(out, t.iso_week().year() as i64, 4, fm),
            Field::Cc => num(out, (year + 99) / 100, 2, fm),
            Field::MonthName(c) => name(out, MONTHS[t.month0() as usize], c, (!fm).then_some(9)),
            Field::MonAbbr(c) => name(out, &MONTHS[t.month0() as usize][..3], c, None),
            Field::Mm => num(out, t.month() as i64, 2, fm),
            Field::DayName(c) => name(
                out,
                DAYS[t.weekday().num_days_from_sunday() as usize],
                c,
                (!fm).then_some(9),
            ),
            Field::DayAbbr(c) => name(
                out,
                &DAYS[t.weekday().num_days_from_sunday() as usize][..3],
                c,
                None,
            ),
            Field::Ddd => num(out, t.ordinal() as i64, 3, fm),
            Field::Dd => num(out, t.day() as i64, 2, fm),
            Field::D => num(out, t.weekday().number_from_sunday() as i64, 1, fm),
            Field::Id => num(out, t.weekday().number_from_monday() as i64, 1, fm),
            Field::Ww => num(out, ((t.ordinal() - 1) / 7 + 1) as i64, 2, fm),
            Field::Iw => num(out, t.iso_week().week() as i64, 2, fm),
            Field::W => num(out, ((t.day() - 1) / 7 + 1) as i64, 1, fm),
            Field::Q => num(out, (t.month0() / 3 + 1) as i64, 1, fm),
            Field::J => num(out, t.date().num_days_from_ce() as i64 + 1_721_425, 1, true),
            // Values are UTC: the session time zone is always UTC.
            Field::Tz(c) => name(out, "UTC", c, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(us: i64, t: &str) -> String {
        let mut b = StringBuilder::new();
        render(&parse(t), &datetime(us).unwrap_or_default(), &mut b);
        b.append_value("");
        b.finish().value(0).to_string()
    }

    // 2026-03-05 14:07:09.123456 UTC, a Thursday.
    const T: i64 = 1_772_719_629_123_456;

    #[test]
    fn postgres_templates() {
        assert_eq!(fmt(T, "YYYY-MM-DD"), "2026-03-05");
        assert_eq!(fmt(T, "yyyy-MM-dd"), "2026-03-05");
        assert_eq!(fmt(T, "HH24:MI:SS.MS"), "14:07:09.123");
        assert_eq!(fmt(T, "HH12:MI AM"), "02:07 PM");
        assert_eq!(fmt(T, "Month DD, YYYY"), "March     05, 2026");
        assert_eq!(fmt(T, "FMMonth FMDD, Dy"), "March 5, Thu");
        assert_eq!(fmt(T, "DAY day Mon MON"), "THURSDAY  thursday  Mar MAR");
        assert_eq!(fmt(T, "\"day\" DDD Q WW US"), "day 064 1 10 123456");
        assert_eq!(fmt(T, "Y,YYY CC J"), "2,026 21 2461105");
        assert_eq!(fmt(0, "YYYY-MM-DD HH24:MI:SS"), "1970-01-01 00:00:00");
    }
}
