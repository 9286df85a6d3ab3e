//! Opening a joiner: the spec's sources, groups and joins, the state folder and its checkpoint,
//! the input partitions and their offsets.

use super::*;
use crate::io::KafkaInput;
use crate::pipeline::ReadSource;

/// A joiner's state as opened: the store, its checkpoint (or a new one), and the events it
/// holds queued.
pub(super) struct OpenedState {
    pub(super) store: StateStore,
    /// The store holds no key's rows.
    pub(super) no_keys: bool,
    pub(super) cp: Checkpoint,
    pub(super) pending: PendingEvents<Queued>,
    pub(super) events: RowArena,
}

/// Opens (or creates) the state folder and checks that it belongs to this spec and instance.
pub(super) fn open_state(
    cfg: &JoinConfig,
    defs: &Definitions,
    spec: &CompiledSpec,
    event_codec: &Codec,
) -> Result<OpenedState, Error> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| {
        Error::Config(format!(
            "cannot create the state folder {}: {e}",
            cfg.state_dir.display()
        ))
    })?;
    let store = StateStore::open(&cfg.state_dir)?;
    let no_keys = store.is_empty(CF_KEYS)?;
    let instance = format!("{}/{}", cfg.instance.index, cfg.instance.count);
    let fp = fingerprints(defs, spec);
    let cp = match store.checkpoint()? {
        Some(cp) => {
            if cp.tie_encoding != fstore_core::semantics::order::TIE_ENCODING {
                return Err(Error::Config(format!(
                    "state folder {} orders ties by {:?}, this fstore by {:?}: rebuild the state (a new --state folder from the start of the topics)",
                    cfg.state_dir.display(),
                    cp.tie_encoding,
                    fstore_core::semantics::order::TIE_ENCODING
                )));
            }
            if cp.spec != spec.spec.name || cp.spec_fingerprint != fp || cp.instance != instance {
                return Err(Error::Config(format!(
                    "state folder {} belongs to spec \"{}\" as instance {} with other definitions; this run is spec \"{}\" as instance {instance}: use a new --state folder (or delete it to start over)",
                    cfg.state_dir.display(),
                    cp.spec,
                    cp.instance,
                    spec.spec.name
                )));
            }
            cp
        }
        None => Checkpoint {
            spec: spec.spec.name.clone(),
            spec_fingerprint: fp,
            instance,
            frontier: i64::MIN,
            run: format!(
                "{:08x}",
                (now_us() as u64 ^ u64::from(std::process::id()).rotate_left(40)) & 0xffff_ffff
            ),
            tie_encoding: fstore_core::semantics::order::TIE_ENCODING.to_string(),
            ..Default::default()
        },
    };
    let mut pending = PendingEvents::default();
    let mut events = RowArena::new(event_codec.types().to_vec());
    for (_, v) in store.scan(CF_EVENTS)? {
        let event = PendingEvent::decode(event_codec, &v)?;
        let at = events.load(&event.values, event.key.as_deref())?;
        pending.insert(event.id(), Queued { at, stored: true });
    }
    events.seal()?;
    Ok(OpenedState {
        store,
        no_keys,
        cp,
        pending,
        events,
    })
}

pub(super) fn fingerprints(defs: &Definitions, spec: &CompiledSpec) -> String {
    let mut parts = vec![format!(
        "spec:{}",
        ObjectRef::Spec(&spec.spec).fingerprint()
    )];
    let mut sources = vec![&spec.source];
    for j in &spec.joins {
        parts.push(format!(
            "group:{}:{}",
            j.group.group.name,
            ObjectRef::Group(&j.group.group).fingerprint()
        ));
        sources.push(&j.group.source);
    }
    for s in sources {
        if let Ok(src) = defs.source(&s.name) {
            parts.push(format!(
                "source:{}:{}",
                s.name,
                ObjectRef::Source(src).fingerprint()
            ));
        }
    }
    parts.sort();
    parts.dedup();
    parts.join(",")
}

/// The codec types of a group's state rows.
pub(super) fn state_types(g: &CompiledGroup) -> Vec<DataType> {
    match &g.kind {
        CompiledGroupKind::Row { features, .. } => {
            features.iter().map(|f| f.dtype.clone()).collect()
        }
        CompiledGroupKind::Window { features } => {
            let mut t = Vec::new();
            for f in features {
                if let Some(i) = &f.input {
                    t.push(i.dtype.clone());
                }
                if f.filter.is_some() {
                    t.push(DataType::Boolean);
                }
            }
            t
        }
    }
}

/// What a joiner runs, prepared from the definitions alone: the compiled spec, its sources
/// (the events' first), groups and joins, and the events' codec.
pub(super) struct Plan {
    pub(super) spec: Arc<CompiledSpec>,
    pub(super) ts_output: usize,
    pub(super) sources: Vec<SourceRt>,
    pub(super) groups: Vec<GroupRt>,
    pub(super) joins: Vec<JoinRt>,
    pub(super) event_codec: Codec,
}

impl Plan {
    pub(super) fn new(cfg: &JoinConfig, defs: &Definitions) -> Result<Self, Error> {
        let spec = Arc::new(CompiledSpec::compile(defs, &cfg.spec)?);
        let ts_output = spec
            .spec
            .columns
            .iter()
            .position(|c| matches!(c.role, ColumnRole::EventTime { .. }))
            .ok_or_else(|| {
                Error::Config(format!(
                    "sample spec \"{}\" does not select its event time column; samples are ordered and partitioned by it",
                    spec.spec.name
                ))
            })?;

        // Sources: the events' first, then each join's, once each.
        let mut sources: Vec<SourceRt> = Vec::new();
        let mut groups: Vec<GroupRt> = Vec::new();
        let mut joins = Vec::new();
        let topic_of = |name: &str, declared: &Option<String>| -> Result<String, Error> {
            cfg.topics
                .get(name)
                .cloned()
                .or_else(|| declared.clone())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "source \"{name}\" has no KAFKA TOPIC; declare one or pass --topic {name}=TOPIC"
                    ))
                })
        };
        let source_rt = |s: &fstore_registry::model::Source| -> Result<SourceRt, Error> {
            Ok(SourceRt {
                name: s.name.clone(),
                topic: topic_of(&s.name, &s.topic)?,
                columns: s.columns.clone(),
                schema: plain_source_schema(s),
                ts_column: s
                    .columns
                    .iter()
                    .position(|c| c.name == s.event_time)
                    .ok_or_else(|| Error::Internal("event time column missing".into()))?,
                is_event: false,
                groups: Vec::new(),
            })
        };
        let mut events = source_rt(&spec.source)?;
        events.is_event = true;
        sources.push(events);
        for j in &spec.joins {
            let g = match groups
                .iter()
                .position(|g| g.compiled.group.name == j.group.group.name)
            {
                Some(g) => g,
                None => {
                    groups.push(GroupRt {
                        codec: Codec::new(
                            &ObjectRef::Group(&j.group.group).fingerprint(),
                            state_types(&j.group),
                        )?,
                        compiled: j.group.clone(),
                    });
                    let g = groups.len() - 1;
                    let s = match sources.iter().position(|s| s.name == j.group.source.name) {
                        Some(s) => s,
                        None => {
                            sources.push(source_rt(&j.group.source)?);
                            sources.len() - 1
                        }
                    };
                    sources[s].groups.push(g);
                    g
                }
            };
            joins.push(JoinRt {
                alias: j.join.alias.clone(),
                group: g,
                event_keys: j.event_keys.clone(),
            });
        }
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        for name in cfg.topics.keys().chain(cfg.broadcast.iter()) {
            if !names.contains(&name.as_str()) {
                return Err(Error::Config(format!(
                    "\"{name}\" is not a source of spec \"{}\" (its sources: {})",
                    spec.spec.name,
                    names.join(", ")
                )));
            }
        }
        if cfg.broadcast.contains(&spec.source.name) {
            return Err(Error::Config(format!(
                "--broadcast {}: the label events are split between instances, never broadcast (each would emit every sample)",
                spec.source.name
            )));
        }
        let mut by_topic = HashMap::new();
        for (i, s) in sources.iter().enumerate() {
            if let Some(other) = by_topic.insert(s.topic.clone(), i) {
                return Err(Error::Config(format!(
                    "sources \"{}\" and \"{}\" read the same topic \"{}\"",
                    sources[other].name, s.name, s.topic
                )));
            }
        }
        let event_codec = Codec::new(
            &ObjectRef::Source(defs.source(&spec.source.name)?).fingerprint(),
            spec.source
                .columns
                .iter()
                .map(|c| c.dtype.clone())
                .collect(),
        )?;
        Ok(Plan {
            spec,
            ts_output,
            sources,
            groups,
            joins,
            event_codec,
        })
    }

    /// What the input reads of each source, in source order.
    pub(super) fn read_sources(&self) -> Vec<ReadSource> {
        self.sources
            .iter()
            .map(|s| ReadSource {
                topic: s.topic.clone(),
                columns: s.columns.clone(),
                schema: s.schema.clone(),
            })
            .collect()
    }
}

/// The partitions of each source a joiner reads: all of a broadcast source's, the instance's
/// share of the others'. Sources split between instances must be partitioned like the events.
pub(super) fn assigned_partitions(
    cfg: &JoinConfig,
    sources: &[SourceRt],
    listed: Vec<Vec<i32>>,
) -> Result<Vec<InputPartition>, Error> {
    let mut inputs = Vec::new();
    let mut event_partitions = 0usize;
    for (s, all) in sources.iter().zip(listed) {
        if s.is_event {
            event_partitions = all.len();
        } else if cfg.instance.count > 1
            && !cfg.broadcast.contains(&s.name)
            && all.len() != event_partitions
        {
            return Err(Error::Config(format!(
                "source \"{}\" has {} partitions, the events' topic {}: sources split between instances must be partitioned alike (or pass --broadcast {})",
                s.name,
                all.len(),
                event_partitions,
                s.name
            )));
        }
        for p in all {
            if cfg.broadcast.contains(&s.name) || cfg.instance.owns(p) {
                inputs.push((s.topic.clone(), p));
            }
        }
    }
    Ok(inputs)
}

impl Joiner {
    /// Prepares a run on Kafka: compiles the spec, opens the state folder (resuming its
    /// checkpoint), finds the topics' partitions and assigns them at the committed offsets,
    /// and repairs the output of an interrupted run.
    pub fn open(
        cfg: JoinConfig,
        defs: &Definitions,
        registry_version: u64,
        online: Option<Box<dyn OnlineWriter>>,
    ) -> Result<Self, Error> {
        let plan = Plan::new(&cfg, defs)?;
        let kafka = Kafka {
            brokers: cfg.brokers.clone(),
            options: cfg.kafka_options.clone(),
        };
        // The state store opens (its files created and synced) while the broker is asked
        // for the sources' partitions: both wait on I/O.
        let (state, listed) = std::thread::scope(|scope| {
            let state = scope.spawn(|| open_state(&cfg, defs, &plan.spec, &plan.event_codec));
            let topics: Vec<(&str, &str)> = plan
                .sources
                .iter()
                .map(|s| (s.name.as_str(), s.topic.as_str()))
                .collect();
            let listed = KafkaInput::list(&kafka, &cfg, &plan.spec.spec.name, &topics);
            (state.join(), listed)
        });
        let state =
            state.map_err(|_| Error::Internal("opening the state store panicked".into()))??;
        let (consumer, listed) = listed?;
        let event_partitions = listed.first().map_or(0, Vec::len);
        let inputs = assigned_partitions(&cfg, &plan.sources, listed)?;
        let io = KafkaInput::connect(
            &kafka,
            consumer,
            &cfg,
            plan.read_sources(),
            &inputs,
            &state.cp,
            event_partitions,
        )?;
        Joiner::assemble(cfg, plan, state, io, registry_version, online)
    }

    /// Prepares a run on any input: `connect` gets the checkpoint the state folder resumes
    /// from and what to read of each source (in source order: the events' first), and returns
    /// the input (reading from the checkpoint's offsets) and the outlet.
    pub fn open_with(
        cfg: JoinConfig,
        defs: &Definitions,
        registry_version: u64,
        online: Option<Box<dyn OnlineWriter>>,
        connect: impl FnOnce(&Checkpoint, Vec<ReadSource>) -> Result<Io, Error>,
    ) -> Result<Self, Error> {
        let plan = Plan::new(&cfg, defs)?;
        let state = open_state(&cfg, defs, &plan.spec, &plan.event_codec)?;
        let io = connect(&state.cp, plan.read_sources())?;
        Joiner::assemble(cfg, plan, state, io, registry_version, online)
    }

    fn assemble(
        cfg: JoinConfig,
        plan: Plan,
        state: OpenedState,
        io: Io,
        registry_version: u64,
        online: Option<Box<dyn OnlineWriter>>,
    ) -> Result<Self, Error> {
        let Plan {
            spec,
            ts_output,
            sources,
            groups,
            joins,
            event_codec,
        } = plan;
        let OpenedState {
            store,
            no_keys,
            cp,
            pending,
            events,
        } = state;
        let Io {
            input,
            outlet,
            partitions: inputs,
            ends,
        } = io;
        let max_ts: BTreeMap<InputPartition, i64> = cp
            .max_ts
            .iter()
            .flat_map(|(t, m)| m.iter().map(move |(p, ts)| ((t.clone(), *p), *ts)))
            .collect();
        let marks = Watermarks::new(cfg.lateness_us, inputs.clone(), max_ts, cp.frontier);
        let now = Instant::now();
        let sample_columns = spec
            .spec
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                dtype: c.dtype.clone(),
            })
            .collect();
        let groups_len = groups.len();
        let arenas = groups
            .iter()
            .map(|g| RowArena::new(g.codec.types().to_vec()))
            .collect();
        let writer = match &cfg.sink {
            SinkTarget::Parquet(_) => Some(SampleWriter::start()?),
            SinkTarget::Kafka(_) => None,
        };
        let mut joiner = Joiner {
            last_seen: inputs.iter().map(|p| (p.clone(), now)).collect(),
            cfg,
            spec,
            registry_version,
            writer,
            input,
            outlet,
            store,
            sources,
            groups,
            joins,
            event_codec,
            sample_columns,
            ts_output,
            marks,
            cp,
            pending,
            new_events: Vec::new(),
            event_changes: FastMap::default(),
            cache: (0..groups_len).map(|_| KeyCache::default()).collect(),
            all_keys_cached: no_keys,
            arenas,
            events,
            out_msgs: Vec::new(),
            last_checkpoint: now,
            ends,
            end_checked: HashMap::new(),
            online,
            sweep_from: None,
            phase_seconds: BTreeMap::new(),
            status: Arc::default(),
            failed: false,
        };
        joiner.remove_uncommitted_files()?;
        joiner.recover_outbox()?;
        joiner.publish_status();
        Ok(joiner)
    }
}
