//! `fstore gen ctr`: a deterministic data set for the `ctr` example, in Parquet and JSON lines,
//! with every edge case of the semantic contract planted and counted in `gen_meta.json`.
//!
//! Planted: feature rows at exactly an event's ts; rows exactly TTL before an event and
//! TTL + 1 µs before; keys that never get a feature row; events before a key's first row;
//! several events of one user at the same ts; events exactly 1 day and 7 days (and 1 µs less)
//! after another of the same user; two feature rows of one key at the same ts (ties); NULLs;
//! empty strings; unicode; int64 beyond 2^53; NaN, -0.0 and ±infinity; rows in shuffled file
//! order; and `events.jsonl` in arrival order with about 2% of rows up to 10 minutes late.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::datatypes::Schema;
use fstore_core::codec::Value;
use fstore_core::json::{encode_row, to_json};
use fstore_core::rows::rows_to_batch;
use fstore_registry::model::{Definitions, Source};
use fstore_registry::schema::source_schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
const MINUTE: i64 = 60_000_000;

/// The example's definitions, compiled into the binary so `gen` works from any folder.
const CTR_DEFS: [(&str, &str); 4] = [
    ("entities.sql", include_str!("../examples/ctr/entities.sql")),
    ("sources.sql", include_str!("../examples/ctr/sources.sql")),
    ("groups.sql", include_str!("../examples/ctr/groups.sql")),
    ("samples.sql", include_str!("../examples/ctr/samples.sql")),
];

/// Sizes of the generated data set.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Label events (impressions), before planted extras.
    #[arg(long, default_value_t = 2000)]
    pub impressions: usize,
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    #[arg(long, default_value_t = 60)]
    pub items: usize,
    /// Profile rows, before planted extras.
    #[arg(long, default_value_t = 1500)]
    pub profile_rows: usize,
    /// Item stats rows, before planted extras.
    #[arg(long, default_value_t = 400)]
    pub item_rows: usize,
    /// Days of impressions, from 2024-01-01T00:00:00Z.
    #[arg(long, default_value_t = 20)]
    pub days: i64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave out NaN, -0.0 and infinities.
    #[arg(long)]
    pub no_special_floats: bool,
    /// Skip the JSON lines files (for large sets).
    #[arg(long)]
    pub no_json: bool,
}

use fstore_core::splitmix::SplitMix64 as Rng;

const CITIES: [&str; 14] = [
    "Paris",
    "Москва",
    "東京",
    "Zürich",
    "São Paulo",
    "القاهرة",
    "🏙️ Gotham",
    "Quote\"Back\\slash",
    "Tab\tCity",
    "Kraków",
    "Ελλάδα",
    "New York",
    "Hà Nội",
    "İstanbul",
];
const CATEGORIES: [&str; 8] = [
    "books",
    "electronics",
    "🎮 games",
    "家電",
    "mode & beauté",
    "jouets",
    "игрушки",
    "Spielwaren",
];

struct Gen {
    rng: Rng,
    specials: bool,
    meta: BTreeMap<&'static str, u64>,
    /// (ts, row) per table.
    impressions: Vec<(i64, Vec<Value>)>,
    profiles: Vec<(i64, Vec<Value>)>,
    items: Vec<(i64, Vec<Value>)>,
}

fn user(u: usize) -> Value {
    Value::String(format!("user_{u}"))
}

impl Gen {
    fn count(&mut self, what: &'static str) {
        *self.meta.entry(what).or_default() += 1;
    }

    fn double(&mut self, scale: f64, null_p: f64) -> Value {
        if self.rng.chance(null_p) {
            return Value::Null;
        }
        if self.specials && self.rng.chance(0.02) {
            self.count("special_floats");
            return Value::Double(*self.rng.pick(&[
                f64::NAN,
                -0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ]));
        }
        Value::Double(self.rng.unit() * scale)
    }

    fn profile(&mut self, u: usize, ts: i64) {
        let age = if self.rng.chance(0.03) {
            Value::Null
        } else if self.rng.chance(0.005) {
            self.count("int64_beyond_2_53");
            Value::Int64(*self.rng.pick(&[
                -9_007_199_254_740_993,
                9_007_199_254_740_993,
                i64::MAX,
                i64::MIN,
            ]))
        } else {
            Value::Int64(self.rng.range(13, 90))
        };
        let city = if self.rng.chance(0.03) {
            Value::Null
        } else if self.rng.chance(0.03) {
            self.count("empty_strings");
            Value::String(String::new())
        } else {
            Value::String(self.rng.pick(&CITIES).to_string())
        };
        let score = self.double(100.0, 0.03);
        self.profiles
            .push((ts, vec![user(u), Value::Timestamp(ts), age, city, score]));
    }

    fn item_row(&mut self, item: i64, ts: i64) {
        let ctr = self.double(0.2, 0.03);
        let category = if self.rng.chance(0.03) {
            Value::Null
        } else {
            Value::String(self.rng.pick(&CATEGORIES).to_string())
        };
        self.items.push((
            ts,
            vec![Value::Int64(item), Value::Timestamp(ts), ctr, category],
        ));
    }

    fn impression(&mut self, u: usize, item: i64, ts: i64) {
        let id = self.impressions.len() as i64 + 1;
        let clicked = if self.rng.chance(0.01) {
            Value::Null
        } else {
            Value::Boolean(self.rng.chance(0.15))
        };
        self.impressions.push((
            ts,
            vec![
                Value::Int64(id),
                user(u),
                Value::Int64(item),
                Value::Timestamp(ts),
                clicked,
            ],
        ));
    }
}

fn item_id(i: usize, items: usize) -> i64 {
    // The last item id lies beyond 2^53: JSON readers that go through doubles would corrupt it.
    if i + 1 == items {
        9_007_199_254_740_993
    } else {
        10_000_000_000 + i as i64
    }
}

/// Generates the data set into `out`.
pub fn generate(args: &GenArgs, out: &Path) -> Result<()> {
    let files = CTR_DEFS
        .iter()
        .map(|(n, t)| (n.into(), t.to_string()))
        .collect();
    let defs = fstore_dsl::compile_files(files)
        .map_err(|d| anyhow::anyhow!("the embedded ctr definitions do not compile:\n{d}"))?;
    let mut g = Gen {
        rng: Rng(args.seed),
        specials: !args.no_special_floats,
        meta: BTreeMap::new(),
        impressions: Vec::new(),
        profiles: Vec::new(),
        items: Vec::new(),
    };
    let l = Layout::new(args, &mut g.meta);
    g.random_rows(args, &l);
    g.ttl_boundaries(&l);
    g.planted(args.impressions, &l);
    let counts = [
        ("impressions", g.impressions.len()),
        ("user_profile", g.profiles.len()),
        ("item_stats", g.items.len()),
    ];
    fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    g.write_tables(&defs, !args.no_json, out)?;
    let meta = serde_json::json!({
        "args": {
            "impressions": args.impressions, "users": l.users, "items": l.items, "profile_rows": args.profile_rows,
            "item_rows": args.item_rows, "days": args.days, "seed": args.seed, "special_floats": !args.no_special_floats,
        },
        "edge_cases": g.meta,
        "rows": counts.iter().map(|(n, c)| (n.to_string(), serde_json::Value::from(*c))).collect::<serde_json::Map<_, _>>(),
    });
    fs::write(
        out.join("gen_meta.json"),
        serde_json::to_string_pretty(&meta)? + "\n",
    )?;
    println!(
        "generated {} impressions, {} user_profile rows, {} item_stats rows into {}",
        counts[0].1,
        counts[1].1,
        counts[2].1,
        out.display()
    );
    Ok(())
}

/// The shape of the data set: its span of time, and which users and items get which rows.
struct Layout {
    start: i64,
    end: i64,
    users: usize,
    items: usize,
    /// Users `0..boundary` and items `0..boundary_items` get only planted rows (the TTL
    /// boundaries); the others random rows.
    boundary: usize,
    boundary_items: usize,
    /// Users from `profiled` and items from `stated` on get no feature row at all.
    profiled: usize,
    stated: usize,
}

impl Layout {
    /// The layout for `args`, counting the users and items without feature rows in `meta`.
    fn new(args: &GenArgs, meta: &mut BTreeMap<&'static str, u64>) -> Self {
        let start: i64 = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z
        let (users, items) = (args.users.max(20), args.items.max(10));
        // Users and items without any feature row.
        let no_profile = (users / 25).max(2);
        let no_stats = (items / 12).max(2);
        meta.insert("users_without_profile", no_profile as u64);
        meta.insert("items_without_stats", no_stats as u64);
        let profiled = users - no_profile;
        let stated = items - no_stats;
        Layout {
            start,
            end: start + args.days * DAY,
            users,
            items,
            boundary: 6.min(profiled / 4),
            boundary_items: 6.min(stated / 4),
            profiled,
            stated,
        }
    }

    /// Whether user `u` gets random feature rows.
    fn regular_user(&self, u: usize) -> bool {
        u >= self.boundary && u < self.profiled
    }
}

/// The user of an impression row.
fn user_of(row: &[Value]) -> usize {
    match &row[1] {
        Value::String(s) => s.trim_start_matches("user_").parse::<usize>().unwrap_or(0),
        _ => 0,
    }
}

/// The item of an impression row.
fn item_of(row: &[Value]) -> i64 {
    match row[2] {
        Value::Int64(i) => i,
        _ => 0,
    }
}

impl Gen {
    /// The random rows: regular users' and items' feature rows from 10 and 3 days before the
    /// first impression, and the impressions.
    fn random_rows(&mut self, args: &GenArgs, l: &Layout) {
        for _ in 0..args.profile_rows {
            let u = l.boundary + self.rng.below((l.profiled - l.boundary) as u64) as usize;
            let ts = self.rng.range(l.start - 10 * DAY, l.end);
            self.profile(u, ts);
        }
        for _ in 0..args.item_rows {
            let i =
                l.boundary_items + self.rng.below((l.stated - l.boundary_items) as u64) as usize;
            let ts = self.rng.range(l.start - 3 * DAY, l.end);
            self.item_row(item_id(i, l.items), ts);
        }
        for _ in 0..args.impressions {
            // Skewed toward low user numbers, so some users have many events.
            let u = ((self.rng.unit().powi(2)) * l.users as f64) as usize % l.users;
            let i = self.rng.below(l.items as u64) as usize;
            let ts = self.rng.range(l.start, l.end);
            self.impression(u, item_id(i, l.items), ts);
        }
    }

    /// TTL boundaries: one row, then events exactly TTL later and TTL + 1 µs later.
    fn ttl_boundaries(&mut self, l: &Layout) {
        for b in 0..l.boundary {
            let t0 = l.start - 15 * DAY + b as i64 * HOUR + 17;
            self.profile(b, t0);
            let it = item_id(self.rng.below(l.items as u64) as usize, l.items);
            self.impression(b, it, t0 + 30 * DAY);
            self.count("up_exactly_ttl_before");
            self.impression(b, it, t0 + 30 * DAY + 1);
            self.count("up_ttl_plus_1us_before");
        }
        for b in 0..l.boundary_items {
            let t0 = l.start + DAY + b as i64 * HOUR + 29;
            let id = item_id(b, l.items);
            self.item_row(id, t0);
            let u = self.rng.below(l.users as u64) as usize;
            self.impression(u, id, t0 + 7 * DAY);
            self.count("is_exactly_ttl_before");
            self.impression(u, id, t0 + 7 * DAY + 1);
            self.count("is_ttl_plus_1us_before");
        }
    }

    /// The edge cases planted around random impressions (of the first `impressions`), one
    /// kind after another.
    fn planted(&mut self, impressions: usize, l: &Layout) {
        let base: Vec<(i64, Vec<Value>)> =
            self.impressions[..impressions.min(self.impressions.len())].to_vec();
        let picks = (base.len() / 60).max(3);
        for k in 0..picks {
            let (ts, row) = base[self.rng.below(base.len() as u64) as usize].clone();
            self.plant(k % 5, ts, user_of(&row), item_of(&row), l);
        }
    }

    /// Plants edge case `kind` around an impression of user `u` and item `it` at `ts`.
    fn plant(&mut self, kind: usize, ts: i64, u: usize, it: i64, l: &Layout) {
        match kind {
            // A feature row at exactly the event's ts: included (as-of is inclusive).
            0 if l.regular_user(u) => {
                self.profile(u, ts);
                self.count("up_ts_equals_impression");
            }
            1 => {
                self.item_row(it, ts);
                self.count("is_ts_equals_impression");
            }
            // Several events of one user at the same ts: none sees the others in its windows.
            2 => {
                for _ in 0..3 {
                    let other = item_id(self.rng.below(l.items as u64) as usize, l.items);
                    self.impression(u, other, ts);
                }
                self.count("impressions_dup_user_ts_targets");
            }
            // Window edges: exactly 1 and 7 days later (the earlier event leaves the window)
            // and 1 µs less (it is still inside).
            3 => {
                for (d, what) in [
                    (DAY, "impressions_plus_1d"),
                    (DAY - 1, "impressions_plus_1d_minus_1us"),
                    (7 * DAY, "impressions_plus_7d"),
                    (7 * DAY - 1, "impressions_plus_7d_minus_1us"),
                ] {
                    if ts + d < l.end {
                        self.impression(u, it, ts + d);
                        self.count(what);
                    }
                }
            }
            // Ties: two rows of one key at one ts with different values.
            _ if l.regular_user(u) => {
                let t = ts - self.rng.range(1, 3 * DAY);
                self.profile(u, t);
                self.profile(u, t);
                self.count("profile_ties");
                let it_t = ts - self.rng.range(1, DAY);
                if let Some(i) = (l.boundary_items..l.stated)
                    .map(|i| item_id(i, l.items))
                    .find(|&i| i == it)
                {
                    self.item_row(i, it_t);
                    self.item_row(i, it_t);
                    self.count("item_ties");
                }
            }
            _ => {}
        }
    }

    /// Writes each table in shuffled order as Parquet and, with `json`, as JSON lines, and
    /// `events.jsonl`: every row of every table in arrival order.
    fn write_tables(&mut self, defs: &Definitions, json: bool, out: &Path) -> Result<()> {
        let mut arrival: Vec<(i64, i64, String)> = Vec::new();
        for name in ["impressions", "user_profile", "item_stats"] {
            let source = defs.source(name)?;
            let mut rows = match name {
                "impressions" => self.impressions.clone(),
                "user_profile" => self.profiles.clone(),
                _ => self.items.clone(),
            };
            self.rng.shuffle(&mut rows);
            write_parquet(source, &rows, &out.join(format!("{name}.parquet")))?;
            if json {
                write_jsonl(source, &rows, &out.join(format!("{name}.jsonl")))?;
                self.arrive(name, source, &rows, &mut arrival);
            }
        }
        if json {
            arrival.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| a.2.cmp(&b.2)));
            let mut w = BufWriter::new(File::create(out.join("events.jsonl"))?);
            for (_, _, line) in arrival {
                writeln!(w, "{line}")?;
            }
            w.flush()?;
        }
        Ok(())
    }

    /// The rows of table `name` as they arrive on the stream: (arrival time, ts, the row's JSON
    /// with its table), about 2% of them up to 10 minutes late (counted in the meta).
    fn arrive(
        &mut self,
        name: &str,
        source: &Source,
        rows: &[(i64, Vec<Value>)],
        arrival: &mut Vec<(i64, i64, String)>,
    ) {
        for (ts, row) in rows {
            let late = if self.rng.chance(0.02) {
                self.rng.range(1, 10 * MINUTE)
            } else {
                0
            };
            if late > 0 {
                *self
                    .meta
                    .entry(match name {
                        "impressions" => "events_late_impressions",
                        "user_profile" => "events_late_user_profile",
                        _ => "events_late_item_stats",
                    })
                    .or_default() += 1;
            }
            let mut obj = serde_json::Map::new();
            obj.insert("table".into(), name.into());
            for (c, v) in source.columns.iter().zip(row) {
                obj.insert(c.name.clone(), to_json(v));
            }
            arrival.push((ts + late, *ts, serde_json::Value::Object(obj).to_string()));
        }
    }
}

fn write_parquet(source: &Source, rows: &[(i64, Vec<Value>)], path: &Path) -> Result<()> {
    let schema = source_schema(source);
    // Files carry a plain Arrow schema, without the registry's metadata.
    let schema = Arc::new(Schema::new(schema.fields().clone()));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let tmp = path.with_extension("parquet.tmp");
    let mut w = ArrowWriter::try_new(File::create(&tmp)?, schema.clone(), Some(props))?;
    for chunk in rows.chunks(65_536) {
        let values: Vec<Vec<Value>> = chunk.iter().map(|(_, r)| r.clone()).collect();
        w.write(&rows_to_batch(&schema, &values)?)?;
    }
    w.close()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn write_jsonl(source: &Source, rows: &[(i64, Vec<Value>)], path: &Path) -> Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    for (_, row) in rows {
        writeln!(w, "{}", encode_row(&source.columns, row))?;
    }
    w.flush()?;
    Ok(())
}
