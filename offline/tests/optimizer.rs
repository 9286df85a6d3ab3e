//! `AsOfJoinExec` is a DataFusion operator like any other: it declares the ordering and the
//! distribution it needs, so DataFusion's physical optimizer (the rules Ballista also runs on
//! every stage) puts back sorts that were taken from under it, and its counts are metrics that
//! `EXPLAIN ANALYZE` shows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use fstore_offline::Range;
use fstore_offline::asof::AsOfJoinExec;
use futures::TryStreamExt;

/// The plan with the sorts (and their round-robin spreads) under every as-of join removed.
fn without_join_sorts(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    fn unsorted(p: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        let mut p = p.clone();
        loop {
            let strip = p.downcast_ref::<SortPreservingMergeExec>().is_some()
                || p.downcast_ref::<SortExec>().is_some()
                || p.downcast_ref::<RepartitionExec>().is_some();
            if !strip {
                return p;
            }
            p = p.children()[0].clone();
        }
    }
    plan.transform_down(|p| {
        if p.downcast_ref::<AsOfJoinExec>().is_none() {
            return Ok(Transformed::no(p));
        }
        let children: Vec<_> = p.children().into_iter().map(unsorted).collect();
        let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
        Ok(Transformed::yes(p.replace_children(children, options)?))
    })
    .unwrap()
    .data
}

fn count<T: ExecutionPlan>(plan: &Arc<dyn ExecutionPlan>) -> usize {
    usize::from(plan.downcast_ref::<T>().is_some())
        + plan.children().iter().map(|c| count::<T>(c)).sum::<usize>()
}

#[tokio::test]
async fn the_optimizer_restores_the_sorts_the_join_requires_and_metrics_show_its_counts() {
    let (spec, locations) = crate::example();
    let (want, stats) =
        crate::run_job(crate::Mode::InMemory, &spec, &locations, Range::default()).await;

    let ctx = fstore_offline::read::session();
    let job = fstore_offline::plan(&ctx, &spec, &locations, Range::default())
        .await
        .unwrap();
    let joins = AsOfJoinExec::find_all(job.physical_plan()).len();
    assert_eq!(joins, spec.joins.len());
    let stripped = without_join_sorts(job.physical_plan().clone());
    // Only the final sort of the samples is left.
    assert_eq!(count::<SortExec>(&stripped), 1);
    let state = ctx.state();
    let mut plan = stripped;
    for rule in state.physical_optimizers() {
        plan = rule.optimize(plan, state.config_options()).unwrap();
    }
    assert!(
        count::<SortExec>(&plan) > spec.joins.len(),
        "the optimizer put no sort back under the joins:\n{}",
        DisplayableExecutionPlan::new(plan.as_ref()).indent(true)
    );
    let batches: Vec<RecordBatch> = execute_stream(plan.clone(), ctx.task_ctx())
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let projected: Vec<RecordBatch> = batches.iter().map(|b| spec.project(b).unwrap()).collect();
    let got = arrow::compute::concat_batches(&spec.output_schema, &projected).unwrap();
    assert_eq!(got, want, "samples of the optimized plan differ");

    // The counts travel as the operator's metrics, in the job's stats and in EXPLAIN ANALYZE.
    let shown = DisplayableExecutionPlan::with_metrics(plan.as_ref())
        .indent(true)
        .to_string();
    for name in [
        "events_without_row",
        "events_expired",
        "rows_without_key_or_time",
    ] {
        assert!(shown.contains(name), "{name} missing from:\n{shown}");
    }
    let from_plan: Vec<_> = AsOfJoinExec::find_all(&plan)
        .into_iter()
        .rev()
        .map(AsOfJoinExec::stats)
        .collect();
    assert_eq!(from_plan, stats.joins);
    assert!(stats.joins.iter().any(|j| j.no_row > 0 && j.expired > 0));
}
