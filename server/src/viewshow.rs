//! `SHOW MATERIALIZED VIEWS`: each view's name, whether it is running or
//! failed, and a failed view's error.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_planner::relation::RelKind;
use freshet_runtime::Engine;

use crate::catalog::Catalog;
use crate::exec::Output;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Name", DataType::Utf8, false),
        Field::new("Status", DataType::Utf8, false),
        Field::new("Error", DataType::Utf8, true),
    ]))
}

pub fn show(catalog: &Catalog, engine: &Engine) -> Output {
    let mut names = Vec::new();
    let mut status = Vec::new();
    let mut errors = Vec::new();
    for e in catalog.entries().filter(|e| e.rel.kind == RelKind::View) {
        let err = engine.view_error(e.rel.id);
        names.push(e.rel.name.clone());
        status.push(if err.is_some() { "failed" } else { "running" });
        errors.push(err);
    }
    let schema = schema();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(status)),
            Arc::new(StringArray::from(errors)),
        ],
    );
    Output::Rows {
        schema,
        batches: batch.map(|b| vec![b]).unwrap_or_default(),
    }
}
