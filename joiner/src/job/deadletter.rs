//! Dead letters: a record of each message the joiner could not use, with its kind and reason.

use super::*;

impl Joiner {
    pub(super) fn dead_letter(
        &mut self,
        source: usize,
        m: MsgRef<'_>,
        kind: &str,
        reason: String,
        suffix: &str,
    ) {
        let src = &self.sources[source];
        *self
            .cp
            .counters
            .dead_letters
            .entry(kind.to_string())
            .or_default() += 1;
        tracing::debug!(kind, %reason, topic = %src.topic, partition = m.partition, offset = m.offset, "dead letter");
        self.out_msgs.push(OutMessage {
            topic: self.cfg.dead_letter_topic.clone(),
            key: m.key.map(<[u8]>::to_vec),
            payload: m.payload.unwrap_or_default().to_vec(),
            id: format!(
                "{}:{}/{}:{}/{}/{}{suffix}",
                self.spec.spec.name,
                self.cfg.instance.index,
                self.cfg.instance.count,
                src.topic,
                m.partition,
                m.offset
            ),
            headers: vec![
                ("fstore-kind".into(), kind.as_bytes().to_vec()),
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
