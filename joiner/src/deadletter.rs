//! Dead letters and message ids: the one list of reasons the joiner sets a message aside, and
//! the one format of the ids its messages carry (the `fstore-id` header by which a restarted
//! joiner finds what it already sent).
//!
//! A dead letter is the original message (key and value as read) sent to the dead-letter topic
//! with headers: `fstore-kind` ([`Kind`]), `fstore-reason` (a sentence naming the source,
//! group or spec and what is wrong), `fstore-source`, `fstore-topic`, `fstore-partition`,
//! `fstore-offset`.

use std::fmt;
use std::str::FromStr;

/// Why a message was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The value is not a row of the source (bad JSON, a mistyped column) or is missing.
    Undecodable,
    /// The row has no event time.
    MissingEventTime,
    /// The row's event time is further ahead of the clock than `--max-future` allows.
    FutureEventTime,
    /// The row arrived behind the frontier: it cannot change samples already emitted (a late
    /// feature row still reaches the online store).
    Late,
    /// A group's feature, window input or filter failed on the row.
    Expression,
    /// A feature row whose entity key has a NULL part.
    NullKey,
    /// A spec's transform failed on the event's joined row (the value holds the event).
    Transform,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Undecodable,
        Kind::MissingEventTime,
        Kind::FutureEventTime,
        Kind::Late,
        Kind::Expression,
        Kind::NullKey,
        Kind::Transform,
    ];

    /// The name in the `fstore-kind` header, the counters and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Undecodable => "undecodable",
            Kind::MissingEventTime => "missing-event-time",
            Kind::FutureEventTime => "future-event-time",
            Kind::Late => "late",
            Kind::Expression => "expression",
            Kind::NullKey => "null-key",
            Kind::Transform => "transform",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown dead-letter kind \"{s}\""))
    }
}

/// The id of a message the joiner sends. Spec names hold no `:` and Kafka topic names no `:`,
/// `/` or `#`, so the parts parse back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageId {
    /// `{spec}:{index}/{count}:{topic}/{partition}/{offset}` and, for a row set aside by one
    /// of several groups of its source, `#{group}`.
    DeadLetter {
        spec: String,
        instance: (u32, u32),
        topic: String,
        partition: i32,
        offset: i64,
        group: Option<String>,
    },
    /// `{spec}:{topic}/{partition}/{offset}`: the sample of the label event at that offset.
    Sample {
        spec: String,
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageId::DeadLetter {
                spec,
                instance: (index, count),
                topic,
                partition,
                offset,
                group,
            } => {
                write!(f, "{spec}:{index}/{count}:{topic}/{partition}/{offset}")?;
                match group {
                    Some(g) => write!(f, "#{g}"),
                    None => Ok(()),
                }
            }
            MessageId::Sample {
                spec,
                topic,
                partition,
                offset,
            } => write!(f, "{spec}:{topic}/{partition}/{offset}"),
        }
    }
}

impl FromStr for MessageId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not an fstore message id: \"{s}\"");
        let (spec, rest) = s.split_once(':').ok_or_else(bad)?;
        // A dead letter's instance `I/N:` comes first; a topic holds no ':'.
        let (instance, rest) = match rest.split_once(':') {
            Some((inst, rest)) => {
                let (i, n) = inst.split_once('/').ok_or_else(bad)?;
                let parse = |x: &str| x.parse::<u32>().map_err(|_| bad());
                (Some((parse(i)?, parse(n)?)), rest)
            }
            None => (None, rest),
        };
        let mut parts = rest.splitn(3, '/');
        let (topic, partition, last) = match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(p), Some(o)) if !t.is_empty() => (t, p, o),
            _ => return Err(bad()),
        };
        let partition: i32 = partition.parse().map_err(|_| bad())?;
        let (offset, group) = match last.split_once('#') {
            Some((o, g)) => (o, Some(g.to_string())),
            None => (last, None),
        };
        let offset: i64 = offset.parse().map_err(|_| bad())?;
        Ok(match instance {
            Some(instance) => MessageId::DeadLetter {
                spec: spec.to_string(),
                instance,
                topic: topic.to_string(),
                partition,
                offset,
                group,
            },
            None if group.is_none() => MessageId::Sample {
                spec: spec.to_string(),
                topic: topic.to_string(),
                partition,
                offset,
            },
            None => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_ids_parse_back() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        assert!("lates".parse::<Kind>().is_err());
        let ids = [
            MessageId::DeadLetter {
                spec: "ctr".into(),
                instance: (1, 3),
                topic: "user.profile-v2".into(),
                partition: 7,
                offset: 123_456,
                group: Some("user #profile".into()),
            },
            MessageId::DeadLetter {
                spec: "ctr".into(),
                instance: (0, 1),
                topic: "t".into(),
                partition: 0,
                offset: 0,
                group: None,
            },
            MessageId::Sample {
                spec: "ctr".into(),
                topic: "impressions".into(),
                partition: 2,
                offset: i64::MAX,
            },
        ];
        for id in ids {
            let text = id.to_string();
            assert_eq!(text.parse::<MessageId>(), Ok(id), "{text}");
        }
        assert_eq!(
            MessageId::Sample {
                spec: "ctr".into(),
                topic: "impressions".into(),
                partition: 2,
                offset: 9
            }
            .to_string(),
            "ctr:impressions/2/9"
        );
        for bad in [
            "",
            "ctr",
            "ctr:t/1",
            "ctr:t/x/1",
            "ctr:1:t/0/0",
            "ctr:t/0/0#g",
            ":/0/0",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad}");
        }
    }
}
