//! The contract vectors hold samples computed independently of fstore: the batch engine must
//! reproduce them exactly (rows matched on request_id; doubles bit for bit; NULL is not NaN).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Int64Type;
use fstore_core::rows::value_at;
use fstore_registry::compiled::CompiledSpec;

fn repo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("..")
}

use crate::contract_dir::contract_dir;

async fn read_expected(path: &Path) -> RecordBatch {
    let ctx = fstore_offline::read::session();
    let df = ctx
        .read_parquet(path.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await.unwrap();
    concat_batches(&std::sync::Arc::new(schema), &batches).unwrap()
}

async fn check(set: &str) {
    for mode in crate::MODES {
        check_mode(set, mode).await;
    }
}

async fn check_mode(set: &str, mode: crate::Mode) {
    let Some(dir) = contract_dir() else { return };
    let dir = dir.join(set);
    let defs = fstore_dsl::load_dir(&repo().join("examples/ctr")).unwrap();
    let spec = CompiledSpec::compile(&defs, "ctr").unwrap();
    let locations: HashMap<String, PathBuf> = ["impressions", "user_profile", "item_stats"]
        .iter()
        .map(|s| (s.to_string(), dir.join(format!("{s}.parquet"))))
        .collect();
    let (got, stats) = crate::run_job(mode, &spec, &locations, Default::default()).await;
    let expected = read_expected(&dir.join("expected.parquet")).await;
    assert_eq!(
        got.num_rows(),
        expected.num_rows(),
        "sample count ({stats:?})"
    );
    let index = |b: &RecordBatch| -> HashMap<i64, usize> {
        let ids = b
            .column_by_name("request_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        (0..b.num_rows()).map(|i| (ids.value(i), i)).collect()
    };
    let (gi, ei) = (index(&got), index(&expected));
    let mut diffs = Vec::new();
    let mut cells = 0;
    for field in expected.schema().fields() {
        let e_col = expected.column_by_name(field.name()).unwrap();
        let g_col = got
            .column_by_name(field.name())
            .unwrap_or_else(|| panic!("samples lack column {}", field.name()));
        for (id, &er) in &ei {
            let gr = gi[id];
            let (e, g) = (value_at(e_col, er).unwrap(), value_at(g_col, gr).unwrap());
            cells += 1;
            if e != g {
                diffs.push(format!(
                    "{mode:?}: request_id {id} column {}: expected {e:?}, got {g:?}",
                    field.name()
                ));
            }
        }
    }
    crate::assert_no_diffs(diffs, cells);
    println!(
        "contract {set} ({mode:?}): {} samples, {cells} cells equal; {stats:?}",
        got.num_rows()
    );
}

#[tokio::test]
async fn batch_reproduces_the_basic_contract() {
    check("basic").await;
}

#[tokio::test]
async fn batch_reproduces_the_special_floats_contract() {
    check("special_floats").await;
}
