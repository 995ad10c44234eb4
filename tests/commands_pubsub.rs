//! Pub/sub through slotgate (issue 4, items 4 and 7), against a real cluster of 3 primaries
//! with a replica each.
//!
//! - SUBSCRIBE/PSUBSCRIBE/UNSUBSCRIBE/PUNSUBSCRIBE/PING in subscribed mode answer byte for
//!   byte as a standalone redis-server (confirmations with counts, `message`/`pmessage`),
//!   with PUBLISH from another connection; SSUBSCRIBE/SPUBLISH deliver `smessage`.
//! - PUBSUB CHANNELS/NUMSUB/NUMPAT/SHARDCHANNELS/SHARDNUMSUB count subscribers of every
//!   primary once.
//! - RESP3: push frames (`>`) arrive mixed with normal replies on the same connection, and
//!   every reply still answers its command in order; redis-py (RESP2 and RESP3) subscribes.
//! - A shard channel keeps delivering after its slot migrates to another primary and after
//!   that primary fails over, without the client seeing anything but messages.
//! - A subscriber that never reads while a publisher sends 64 MB is disconnected; slotgate's
//!   memory stays bounded and other clients keep working.

mod common;

use std::time::{Duration, Instant};

use common::commands::{Client, Problems, Reply, Transcript, python, rss_kib, show, tag_on};
use common::{RedisCluster, RespConn, Slotgate, key_slot};

/// A channel name (`prefix` + n) whose slot the primary on `port` serves.
fn channel_on(cluster: &RedisCluster, port: u16, prefix: &str) -> String {
    tag_on(cluster, port, prefix)
}

/// Publishes `message` on `channel` through `publisher` (SPUBLISH if `shard`) until
/// `subscriber` receives a frame, for at most `timeout`; returns the frames received.
fn publish_until_received(
    publisher: &mut Client,
    subscriber: &mut Client,
    shard: bool,
    channel: &str,
    message: &str,
    timeout: Duration,
) -> Vec<Reply> {
    let deadline = Instant::now() + timeout;
    let command = if shard { "SPUBLISH" } else { "PUBLISH" };
    let mut published = Vec::new();
    loop {
        let reply = publisher.call(&format!("{command} {channel} {message}"));
        published.push(format!("{reply:?}"));
        if let Some(frame) = subscriber.read_within(Duration::from_millis(200)) {
            let mut frames = vec![frame];
            while let Some(frame) = subscriber.read_within(Duration::from_millis(200)) {
                frames.push(frame);
            }
            return frames;
        }
        assert!(
            Instant::now() < deadline,
            "no message on {channel} within {timeout:?}; {command} answered {published:?}"
        );
    }
}

#[test]
fn pubsub_delivers_aggregates_and_survives_topology_changes() {
    let cluster = RedisCluster::start(3, 1);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let oracle = common::RedisNode::standalone();
    let mut problems = Problems::default();
    let primaries: Vec<u16> = cluster.primaries().iter().map(|p| p.port).collect();

    // ===== Global channels and patterns, compared with a standalone redis-server ========
    let mut t = Transcript::new(sg.addr, oracle.addr);
    let mut sg_pub = Client::connect(sg.addr);
    let mut oracle_pub = Client::connect(oracle.addr);
    let mut publish = |channel: &str, message: &str| {
        sg_pub.call(&format!("PUBLISH {channel} {message}"));
        oracle_pub.call(&format!("PUBLISH {channel} {message}"));
    };
    t.run("SUBSCRIBE news sport");
    t.next("second confirmation of SUBSCRIBE news sport");
    t.run("PSUBSCRIBE wx.*");
    t.run("SUBSCRIBE news");
    publish("news", "hello");
    let message = t.next("message on news");
    assert_eq!(
        message,
        Reply::Array(vec![
            Reply::bulk("message"),
            Reply::bulk("news"),
            Reply::bulk("hello")
        ])
    );
    publish("wx.paris", "rain");
    t.next("pmessage on wx.paris");
    publish("sport", "goal");
    t.next("message on sport");
    t.run("PING");
    t.run("PING payload");
    t.run("UNSUBSCRIBE news");
    t.run("PUNSUBSCRIBE");
    publish("news", "not-for-you");
    publish("sport", "still-yours");
    t.next("message on sport after leaving news");
    t.run("UNSUBSCRIBE");
    t.run("UNSUBSCRIBE");
    t.run("PUNSUBSCRIBE");
    t.run("SET after:pubsub 1");
    t.run("GET after:pubsub");
    t.assert_same("global pub/sub, RESP2");

    // Commands other than (un)subscribe and PING while subscribed (RESP2): Redis refuses them.
    let mut t = Transcript::new(sg.addr, oracle.addr);
    t.run("SUBSCRIBE refuse");
    t.run("GET after:pubsub");
    t.run("UNSUBSCRIBE");
    let differences = std::mem::take(&mut t.differences);
    problems.check(differences.is_empty(), || {
        format!("a RESP2 client in subscribed mode must be answered as Redis does: {differences:?}")
    });

    // RESET leaves every subscription: nothing more is delivered, commands work again.
    let mut t = Transcript::new(sg.addr, oracle.addr);
    t.run("SUBSCRIBE gone");
    t.run("PSUBSCRIBE gone.*");
    t.run("RESET");
    publish("gone", "after-reset");
    publish("gone.x", "after-reset");
    t.run("SET after:reset 1");
    t.run("GET after:reset");
    let differences = std::mem::take(&mut t.differences);
    problems.check(differences.is_empty(), || {
        format!("RESET while subscribed must leave the subscriptions, as Redis: {differences:?}")
    });
    let mut probe = Client::connect(sg.addr);
    assert_eq!(
        probe.call("PUBSUB NUMSUB gone"),
        Reply::Array(vec![Reply::bulk("gone"), Reply::Int(0)]),
        "no subscriber left on any primary after RESET"
    );

    // ===== Shard channels ================================================================
    let shard_channels: Vec<String> = primaries
        .iter()
        .enumerate()
        .map(|(i, &port)| channel_on(&cluster, port, &format!("shard{i}-")))
        .collect();
    let mut t = Transcript::new(sg.addr, oracle.addr);
    t.run(&format!("SSUBSCRIBE {}", shard_channels[0]));
    t.run(&format!("SSUBSCRIBE {}", shard_channels[1]));
    t.run(&format!("SSUBSCRIBE {}", shard_channels[2]));
    for (i, channel) in shard_channels.iter().enumerate() {
        sg_pub_call(&sg, &format!("SPUBLISH {channel} m{i}"));
        oracle_pub_call(&oracle, &format!("SPUBLISH {channel} m{i}"));
        let frame = t.next(&format!("smessage on {channel}"));
        assert_eq!(
            frame,
            Reply::Array(vec![
                Reply::bulk("smessage"),
                Reply::bulk(channel),
                Reply::bulk(&format!("m{i}"))
            ])
        );
    }
    t.run(&format!("SUNSUBSCRIBE {}", shard_channels[1]));
    let reply = t.run("SUNSUBSCRIBE");
    let items = reply.items();
    assert_eq!(items[0], Reply::bulk("sunsubscribe"));
    let second = t.next("second sunsubscribe");
    // Redis leaves a client's shard channels in its own hash order, which no proxy can
    // reproduce; what must hold is each channel once, with the remaining count falling.
    assert_eq!(items[2], Reply::Int(1), "first bare SUNSUBSCRIBE count");
    assert_eq!(
        second.items()[2],
        Reply::Int(0),
        "second bare SUNSUBSCRIBE count"
    );
    t.differences
        .retain(|d| !d.starts_with("SUNSUBSCRIBE:") && !d.starts_with("second sunsubscribe:"));
    let mut left = vec![items[1].str()];
    left.push(second.items()[1].str());
    left.sort();
    let mut expected = vec![shard_channels[0].clone(), shard_channels[2].clone()];
    expected.sort();
    assert_eq!(
        left, expected,
        "SUNSUBSCRIBE without channels leaves every shard channel"
    );
    t.run("SET after:shard 1");
    let differences = std::mem::take(&mut t.differences);
    problems.check(differences.is_empty(), || {
        format!(
            "shard channels on three primaries: confirmations differ from a standalone Redis \
             (the count of a confirmation is the client's number of shard channels): \
             {differences:?}"
        )
    });

    // ===== PUBSUB introspection, aggregated over the primaries ===========================
    let direct: Vec<RespConn> = cluster
        .primaries()
        .iter()
        .map(|p| RespConn::connect(p.addr))
        .collect();
    let mut direct = direct;
    direct[0].cmd_str(&["SUBSCRIBE", "agg"]);
    direct[1].cmd_str(&["SUBSCRIBE", "agg"]);
    direct[2].cmd_str(&["PSUBSCRIBE", "agg.*"]);
    let sagg = channel_on(&cluster, primaries[1], "sagg");
    let mut shard_direct = RespConn::connect(cluster.node_by_port(primaries[1]).addr);
    shard_direct.cmd_str(&["SSUBSCRIBE", &sagg]);
    let mut via_sg = Client::connect(sg.addr);
    via_sg.call("SUBSCRIBE viasg");
    via_sg.call("PSUBSCRIBE viasg.*");
    let mut c = Client::connect(sg.addr);
    assert_eq!(
        c.call("PUBSUB CHANNELS agg*").strings(),
        vec!["agg".to_owned()],
        "PUBSUB CHANNELS: the union over the primaries, each channel once"
    );
    assert_eq!(
        c.call("PUBSUB CHANNELS viasg*").strings(),
        vec!["viasg".to_owned()],
        "PUBSUB CHANNELS: slotgate's own subscribers"
    );
    assert_eq!(
        c.call("PUBSUB NUMSUB agg viasg nobody"),
        Reply::Array(vec![
            Reply::bulk("agg"),
            Reply::Int(2),
            Reply::bulk("viasg"),
            Reply::Int(1),
            Reply::bulk("nobody"),
            Reply::Int(0),
        ]),
        "PUBSUB NUMSUB: counts summed over the primaries"
    );
    assert_eq!(
        c.call("PUBSUB NUMPAT"),
        Reply::Int(2),
        "PUBSUB NUMPAT summed"
    );
    assert_eq!(
        c.call("PUBSUB SHARDCHANNELS").strings(),
        vec![sagg.clone()],
        "PUBSUB SHARDCHANNELS"
    );
    assert_eq!(
        c.call(&format!("PUBSUB SHARDNUMSUB {sagg} nobody")),
        Reply::Array(vec![
            Reply::bulk(&sagg),
            Reply::Int(1),
            Reply::bulk("nobody"),
            Reply::Int(0),
        ]),
        "PUBSUB SHARDNUMSUB"
    );
    drop(direct);
    drop(shard_direct);
    drop(via_sg);

    // ===== RESP3: push frames mixed with replies =========================================
    let mut sub = Client::connect(sg.addr);
    let hello = sub.call("HELLO 3");
    assert!(matches!(hello, Reply::Map(_)), "HELLO 3: {hello:?}");
    assert_eq!(
        sub.call("SUBSCRIBE r3"),
        Reply::Push(vec![
            Reply::bulk("subscribe"),
            Reply::bulk("r3"),
            Reply::Int(1)
        ])
    );
    let publisher = {
        let addr = sg.addr;
        std::thread::spawn(move || {
            let mut p = Client::connect(addr);
            for i in 0..50 {
                p.call(&format!("PUBLISH r3 m{i}"));
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    // Commands and messages interleave: every command's reply, in order; every message.
    let mut replies = Vec::new();
    let mut messages = Vec::new();
    for i in 0..50 {
        sub.send(&format!("SET r3:k{i} v{i}"));
        sub.send(&format!("GET r3:k{i}"));
        sub.send("INCR r3:n");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (replies.len() < 150 || messages.len() < 50) && Instant::now() < deadline {
        match sub.read_within(Duration::from_millis(500)) {
            Some(Reply::Push(items)) => messages.push(items),
            Some(reply) => replies.push(reply),
            None => {}
        }
    }
    publisher.join().expect("publisher thread");
    assert_eq!(
        replies.len(),
        150,
        "RESP3 subscriber: every command answered"
    );
    for i in 0..50 {
        assert_eq!(replies[3 * i], Reply::Simple("OK".into()), "SET #{i}");
        assert_eq!(
            replies[3 * i + 1],
            Reply::bulk(&format!("v{i}")),
            "GET #{i}"
        );
        assert_eq!(replies[3 * i + 2], Reply::Int(i as i64 + 1), "INCR #{i}");
    }
    let expected: Vec<Vec<Reply>> = (0..50)
        .map(|i| {
            vec![
                Reply::bulk("message"),
                Reply::bulk("r3"),
                Reply::bulk(&format!("m{i}")),
            ]
        })
        .collect();
    let mut sorted = messages.clone();
    sorted.sort_by_key(|m| m[2].str()[1..].parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(
        sorted, expected,
        "RESP3 subscriber: every message, as push frames"
    );
    problems.check(messages == expected, || {
        format!(
            "messages PUBLISHed one after the other by one client must arrive in that order, \
             as from one Redis; got {:?}",
            messages.iter().map(|m| m[2].str()).collect::<Vec<_>>()
        )
    });
    assert_eq!(
        sub.call("SSUBSCRIBE r3shard"),
        Reply::Push(vec![
            Reply::bulk("ssubscribe"),
            Reply::bulk("r3shard"),
            Reply::Int(1)
        ])
    );
    c.call("SPUBLISH r3shard hi");
    assert_eq!(
        sub.read(),
        Reply::Push(vec![
            Reply::bulk("smessage"),
            Reply::bulk("r3shard"),
            Reply::bulk("hi")
        ])
    );
    assert_eq!(
        sub.call("PING"),
        Reply::Simple("PONG".into()),
        "RESP3 PING while subscribed"
    );
    assert_eq!(
        sub.call("UNSUBSCRIBE r3"),
        Reply::Push(vec![
            Reply::bulk("unsubscribe"),
            Reply::bulk("r3"),
            Reply::Int(0)
        ])
    );
    drop(sub);

    // ===== redis-py, RESP2 and RESP3 =====================================================
    let out = python(
        &format!(
            r#"
import redis, time
for proto in (2, 3):
    r = redis.Redis(host="127.0.0.1", port={port}, protocol=proto)
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("py{{proto}}".format(proto=proto))
    p.psubscribe("pypat.*")
    got = []
    deadline = time.time() + 10
    while len(got) < 2 and time.time() < deadline:
        r.publish("py{{proto}}".format(proto=proto), "a")
        r.publish("pypat.x", "b")
        for _ in range(4):
            m = p.get_message(timeout=0.2)
            if m:
                got.append((m["type"], m["data"]))
    print(proto, sorted(set(got)))
    p.close()
"#,
            port = sg.port
        ),
        Duration::from_secs(30),
    );
    assert_eq!(
        out,
        "2 [('message', b'a'), ('pmessage', b'b')]\n3 [('message', b'a'), ('pmessage', b'b')]\n",
        "redis-py pub/sub through slotgate"
    );

    // ===== A shard channel across slot migration and failover ============================
    let channel = channel_on(&cluster, primaries[0], "moving");
    let slot = key_slot(channel.as_bytes());
    let mut sub = Client::connect(sg.addr);
    assert_eq!(
        sub.call(&format!("SSUBSCRIBE {channel}")),
        Reply::Array(vec![
            Reply::bulk("ssubscribe"),
            Reply::bulk(&channel),
            Reply::Int(1)
        ])
    );
    let mut publisher = Client::connect(sg.addr);
    let smessage = |m: &str| {
        Reply::Array(vec![
            Reply::bulk("smessage"),
            Reply::bulk(&channel),
            Reply::bulk(m),
        ])
    };
    let frames = publish_until_received(
        &mut publisher,
        &mut sub,
        true,
        &channel,
        "before",
        Duration::from_secs(5),
    );
    assert_eq!(frames, vec![smessage("before")]);
    cluster.migrate_slot(
        slot,
        cluster.node_by_port(primaries[0]),
        cluster.node_by_port(primaries[1]),
        10,
        Duration::ZERO,
    );
    let frames = publish_until_received(
        &mut publisher,
        &mut sub,
        true,
        &channel,
        "after-migration",
        Duration::from_secs(15),
    );
    problems.check(
        frames.iter().all(|f| *f == smessage("after-migration")),
        || {
            format!(
                "after slot {slot} of shard channel {channel} migrated, the subscriber must \
                 see only messages (slotgate re-subscribes transparently), got {frames:?}"
            )
        },
    );
    let owner = cluster.node_by_port(primaries[1]);
    let replica = cluster.replicas_of(owner)[0];
    cluster.failover(replica);
    let frames = publish_until_received(
        &mut publisher,
        &mut sub,
        true,
        &channel,
        "after-failover",
        Duration::from_secs(15),
    );
    problems.check(
        frames.iter().all(|f| *f == smessage("after-failover")),
        || {
            format!(
                "after the failover of shard channel {channel}'s primary, the subscriber must \
                 see only messages, got {frames:?}"
            )
        },
    );
    // Still subscribed exactly once: one SPUBLISH, one message.
    publisher.call(&format!("SPUBLISH {channel} once"));
    let mut got = Vec::new();
    while let Some(frame) = sub.read_within(Duration::from_millis(500)) {
        got.push(frame);
    }
    problems.check(got == vec![smessage("once")], || {
        format!("one SPUBLISH after migration and failover must deliver one message, got {got:?}")
    });
    assert_eq!(
        sub.call(&format!("SUNSUBSCRIBE {channel}")),
        Reply::Array(vec![
            Reply::bulk("sunsubscribe"),
            Reply::bulk(&channel),
            Reply::Int(0)
        ])
    );
    drop(sub);

    // ===== A subscriber that never reads =================================================
    let slow_channel = channel_on(&cluster, primaries[2], "slow");
    let mut slow = RespConn::connect(sg.addr);
    let slow_id = show(&slow.cmd_str(&["CLIENT", "ID"]))
        .trim_start_matches(':')
        .trim_end()
        .to_owned();
    let confirmation = slow.cmd_str(&["SSUBSCRIBE", &slow_channel]);
    assert!(show(&confirmation).contains("ssubscribe"));
    let rss_before = rss_kib(sg.pid());
    let payload = "x".repeat(100 * 1024);
    let mut p = Client::connect(sg.addr);
    let mut bystander = Client::connect(sg.addr);
    // The subscriber's exit is looked for by its id in CLIENT LIST, over one probe
    // connection: a count of clients would be fooled by any other connection opening or
    // closing meanwhile (the previous subscriber's session winding down, for one).
    let mut probe = RespConn::connect(sg.addr);
    let listed = format!("id={slow_id} ");
    let mut slow_listed = move || show(&probe.cmd_str(&["CLIENT", "LIST"])).contains(&listed);
    assert!(
        slow_listed(),
        "the slow subscriber (id {slow_id}) is not in CLIENT LIST"
    );
    let total_messages = 640; // 64 MB
    let started = Instant::now();
    let mut max_rss = rss_before;
    for i in 0..total_messages {
        let reply = p.call_args(&["SPUBLISH", &slow_channel, &payload]);
        assert!(!reply.is_error(), "SPUBLISH #{i}: {reply:?}");
        if i % 64 == 0 {
            bystander.assert_usable("a slow subscriber's backlog");
            max_rss = max_rss.max(rss_kib(sg.pid()));
        }
    }
    let publish_time = started.elapsed();
    // Without reading a byte, the subscriber must be dropped: its id leaves CLIENT LIST.
    let mut dropped = false;
    // A liveness bound: the loop ends as soon as the drop is seen.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if !slow_listed() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    max_rss = max_rss.max(rss_kib(sg.pid()));
    problems.check(dropped, || {
        format!(
            "a subscriber that never reads must be disconnected once its backlog passes the \
             output limit, without it reading anything; 30 s after 64 MB were published its \
             id {slow_id} is still in CLIENT LIST"
        )
    });
    bystander.assert_usable("64 MB published to a subscriber that never reads");
    assert_eq!(
        bystander.call("SET bystander ok"),
        Reply::Simple("OK".into())
    );
    // Now read what the slow subscriber was sent: it must end with the connection closed,
    // well before 64 MB.
    slow.set_read_timeout(Duration::from_secs(2));
    let mut received = 0usize;
    let mut closed = false;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        use std::io::Read;
        match slow.stream().read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
    }
    let growth_mib = max_rss.saturating_sub(rss_before) / 1024;
    eprintln!(
        "slow subscriber: published 64 MB in {publish_time:?}, subscriber received {} MB, \
         closed={closed}, slotgate RSS {} MB -> peak {} MB",
        received >> 20,
        rss_before / 1024,
        max_rss / 1024
    );
    problems.check(closed && received < 48 << 20, || {
        format!(
            "a subscriber that never reads must be disconnected once its backlog passes the \
             output limit: after 64 MB published it received {} MB and the connection was {}",
            received >> 20,
            if closed { "closed" } else { "still open" }
        )
    });
    problems.check(growth_mib < 48, || {
        format!(
            "slotgate's memory must stay bounded with a subscriber that never reads: RSS grew \
             by {growth_mib} MB while 64 MB were published"
        )
    });
    bystander.assert_usable("the slow subscriber's disconnection");
    let mut fresh = Client::connect(sg.addr);
    assert_eq!(fresh.call("GET bystander"), Reply::bulk("ok"));

    problems.assert_none("pub/sub through slotgate");
}

fn sg_pub_call(sg: &Slotgate, line: &str) {
    Client::connect(sg.addr).call(line);
}

fn oracle_pub_call(oracle: &common::RedisNode, line: &str) {
    Client::connect(oracle.addr).call(line);
}
