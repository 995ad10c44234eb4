//! Sentinel mode's series in `/metrics`, read from the upstream's
//! [`crate::upstream::sentinel::SentinelShared`] at scrape time. Labels are bounded: a
//! result (`ok`/`failed`), never a node address or a master name.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::upstream::Upstream;

/// Encodes the `sentinel_*` series of `upstream` (sentinel mode only).
pub(super) fn encode(e: &mut DescriptorEncoder, upstream: &Upstream) -> Result<(), fmt::Error> {
    let shared = &upstream.sentinel;
    let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    {
        let mut m = e.encode_descriptor(
            "sentinel_queries",
            "Sentinels asked where the primary is, by result (failed: unreachable, timed out or malformed)",
            None,
            MetricType::Counter,
        )?;
        for (result, value) in [
            ("ok", load(&shared.queries_ok)),
            ("failed", load(&shared.queries_failed)),
        ] {
            m.encode_family(&[("result", result)])?
                .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
        }
    }
    let counters = [
        (
            "sentinel_switches",
            "Primary changes slotgate made after the Sentinels' majority and ROLE agreed",
            load(&shared.switches),
        ),
        (
            "sentinel_events",
            "Sentinel events about our primary that triggered a re-resolution",
            load(&shared.events),
        ),
        (
            "sentinel_holds",
            "Failover holds begun (+try-failover): commands waited for the new primary",
            load(&shared.holds),
        ),
        (
            "sentinel_disagreements",
            "Sentinel answers that differed from the majority's primary",
            load(&shared.disagreements),
        ),
    ];
    for (name, help, value) in counters {
        e.encode_descriptor(name, help, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
    }
    let status = shared.status();
    let reachable = status
        .as_ref()
        .map_or(0, |s| s.sentinels.iter().filter(|p| p.reachable).count());
    let known = status.as_ref().map_or(0, |s| s.sentinels.len());
    let gauges = [
        (
            "sentinel_unreachable",
            "1 while no Sentinel answers and the last primary confirmed by ROLE is served",
            i64::from(shared.unreachable.load(Ordering::Relaxed)),
        ),
        (
            "sentinels_known",
            "Sentinels slotgate asks (configured and learned)",
            known as i64,
        ),
        (
            "sentinels_reachable",
            "Sentinels that answered the last round",
            reachable as i64,
        ),
    ];
    for (name, help, value) in gauges {
        e.encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&value)?;
    }
    Ok(())
}
