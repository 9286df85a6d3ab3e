//! Dead letters: a record of each message the joiner could not use, with its kind and reason.

use super::*;
use crate::deadletter::{Kind, MessageId};

impl Joiner {
    /// Sets message `m` of source `source` aside: counted by kind, and queued for the
    /// dead-letter topic with its reason. `group` names the group at fault when the source
    /// feeds several (each may set the same message aside).
    pub(super) fn dead_letter(
        &mut self,
        source: usize,
        m: MsgRef<'_>,
        kind: Kind,
        reason: String,
        group: Option<&str>,
    ) {
        let src = &self.sources[source];
        *self
            .cp
            .counters
            .dead_letters
            .entry(kind.as_str().to_string())
            .or_default() += 1;
        tracing::debug!(kind = kind.as_str(), %reason, topic = %src.topic, partition = m.partition, offset = m.offset, "dead letter");
        self.out_msgs.push(OutMessage {
            topic: self.cfg.dead_letter_topic.clone(),
            key: m.key.map(<[u8]>::to_vec),
            payload: m.payload.unwrap_or_default().to_vec(),
            id: MessageId::DeadLetter {
                spec: self.spec.spec.name.clone(),
                instance: (self.cfg.instance.index, self.cfg.instance.count),
                topic: src.topic.clone(),
                partition: m.partition,
                offset: m.offset,
                group: group.map(str::to_string),
            }
            .to_string(),
            headers: vec![
                ("fstore-kind".into(), kind.as_str().as_bytes().to_vec()),
                ("fstore-reason".into(), reason.into_bytes()),
                ("fstore-source".into(), src.name.as_bytes().to_vec()),
                ("fstore-topic".into(), src.topic.as_bytes().to_vec()),
                (
                    "fstore-partition".into(),
                    m.partition.to_string().into_bytes(),
                ),
                ("fstore-offset".into(), m.offset.to_string().into_bytes()),
            ],
        });
    }
}
