//! A ranged job (as a scheduler runs one day) reads only the rows it needs, yet must give
//! exactly the samples a full run gives for the events in its range.

use std::collections::HashMap;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use fstore_core::rows::value_at;
use fstore_offline::Range;

async fn run(mode: crate::Mode, range: Range) -> RecordBatch {
    let (spec, locations) = crate::example();
    crate::run_job(mode, &spec, &locations, range).await.0
}

#[tokio::test]
async fn ranged_runs_equal_the_full_run_restricted_to_their_range() {
    // The full run in memory; the ranged runs chunked and spilling.
    let full = run(crate::Mode::InMemory, Range::default()).await;
    let ids = full.column(0).as_primitive::<Int64Type>();
    let ts = full.column(3).as_primitive::<TimestampMicrosecondType>();
    let by_id: HashMap<i64, usize> = (0..full.num_rows()).map(|r| (ids.value(r), r)).collect();
    const DAY: i64 = 86_400_000_000;
    let first = ts.value(0);
    let some_event = ts.value(full.num_rows() / 2);
    let ranges = [
        (first + 3 * DAY, first + 4 * DAY),
        (some_event, some_event + DAY), // starts exactly at an event's time (inclusive)
        (some_event - DAY, some_event), // ends exactly at it (exclusive)
        (first + 10 * DAY + 1, first + 17 * DAY),
    ];
    let mut diffs = Vec::new();
    let mut cells = 0;
    for (start, end) in ranges {
        let part = run(
            crate::Mode::Spilling,
            Range {
                start: Some(start),
                end: Some(end),
            },
        )
        .await;
        let expected = (0..full.num_rows())
            .filter(|&r| ts.value(r) >= start && ts.value(r) < end)
            .count();
        assert_eq!(part.num_rows(), expected, "samples in [{start}, {end})");
        assert!(expected > 0);
        let pids = part.column(0).as_primitive::<Int64Type>();
        for r in 0..part.num_rows() {
            let f = by_id[&pids.value(r)];
            for c in 0..part.num_columns() {
                cells += 1;
                let (a, b) = (
                    value_at(part.column(c), r).unwrap(),
                    value_at(full.column(c), f).unwrap(),
                );
                if a != b {
                    diffs.push(format!(
                        "[{start}, {end}) request_id {} column {}: ranged {a:?}, full {b:?}",
                        pids.value(r),
                        part.schema().field(c).name()
                    ));
                }
            }
        }
    }
    crate::assert_no_diffs(diffs, cells);
}
