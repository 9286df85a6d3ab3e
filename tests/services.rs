//! Smoke tests proving the suite really talks to the Redis server and the Kafka-protocol
//! broker that scripts/test.sh starts.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::support::{service, unique};

#[tokio::test]
async fn redis_round_trips_a_binary_value() {
    let Some(url) = service("FSTORE_REDIS_URL") else {
        return;
    };
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis is reachable");
    let key = format!("{}:smoke", unique("fstore-test"));
    let value: Vec<u8> = (0..=255u8).collect();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .query_async(&mut conn)
        .await
        .unwrap();
    let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&key)
        .arg(format!("{key}:absent"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, vec![Some(value), None]);
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        info.contains("redis_version"),
        "a real redis server answers INFO"
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn kafka_broker_produces_and_consumes() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let topic = unique("fstore-smoke");
    crate::support::create_topics(&brokers, &[(&topic, 1)]).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let n = 20;
    for i in 0..n {
        let payload = format!("{{\"i\":{i}}}");
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("k{i}"))
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce acked");
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("fstore-smoke-group"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    let expected: Vec<String> = (0..n).map(|i| format!("{{\"i\":{i}}}")).collect();
    assert_eq!(
        got, expected,
        "every produced message is consumed back in order"
    );
}
