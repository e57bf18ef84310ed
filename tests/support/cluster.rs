//! A Redis Cluster of the test's own on loopback: three primaries and three replicas (the
//! production users, AOF), created with `redis-cli --cluster create`, with a short failure
//! detection (1 s) so that a killed primary's replica takes over within seconds.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use super::redis_server::{ADMIN_PASSWORD, RedisServer};

pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts six nodes and makes them one cluster, or returns `None` outside CI when Redis cannot
    /// run here.
    pub fn start() -> Option<Cluster> {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| RedisServer::start_cluster_node())
            .collect::<Option<_>>()?;
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args([
                "--user",
                "admin",
                "--pass",
                ADMIN_PASSWORD,
                "--no-auth-warning",
            ])
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        cluster.wait_until_ok();
        // Each primary has its replica, in sync.
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &cluster.nodes {
            loop {
                let replication = node.command(&["INFO", "replication"]);
                if replication.contains("role:slave") || replication.contains("state=online") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "a primary has no replica:\n{replication}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(cluster)
    }

    /// The seed nodes, as `--redis-cluster` takes them.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// The URL the store connects with (its host is replaced by each node's).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// Waits until every live node says the cluster is ok with all its slots, and every primary's
    /// replicas are in sync.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]);
                let replication = node.command(&["INFO", "replication"]);
                let synced = !replication.contains("role:master")
                    || replication.contains("connected_slaves:0")
                    || replication.contains("state=online");
                if info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && synced
                {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster is not ok:\n{info}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The node serving `key`'s slot as primary.
    pub fn primary_of(&self, key: &str) -> usize {
        let slot = self.nodes[0].command(&["CLUSTER", "KEYSLOT", key]);
        let slot: u16 = slot.trim().parse().expect("a slot");
        self.nodes
            .iter()
            .position(|n| {
                n.is_running() && n.command(&["ROLE"]).starts_with("master") && owns(n, slot)
            })
            .expect("a primary serves the slot")
    }

    /// SIGKILL of a node; returns once the others mark it failed and the cluster is ok again (its
    /// replica took over its slots), with how long that took.
    pub fn kill(&mut self, node: usize) -> Duration {
        let victim = self.nodes[node].command(&["CLUSTER", "MYID"]);
        let started = Instant::now();
        self.nodes[node].kill();
        let deadline = started + Duration::from_secs(30);
        let witness = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a live node");
        loop {
            let nodes = witness.command(&["CLUSTER", "NODES"]);
            let failed = nodes
                .lines()
                .any(|l| l.starts_with(victim.trim()) && l.contains("fail"));
            let info = witness.command(&["CLUSTER", "INFO"]);
            if failed && info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no failover within 30 s:\n{nodes}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        started.elapsed()
    }
}

/// Whether `node` serves `slot` (from `CLUSTER NODES`' line for itself).
fn owns(node: &RedisServer, slot: u16) -> bool {
    let myself = node.command(&["CLUSTER", "MYID"]);
    let nodes = node.command(&["CLUSTER", "NODES"]);
    nodes
        .lines()
        .filter(|l| l.starts_with(myself.trim()))
        .flat_map(|l| l.split(' ').skip(8))
        .any(|range| match range.split_once('-') {
            Some((low, high)) => {
                low.parse::<u16>().is_ok_and(|l| l <= slot)
                    && high.parse::<u16>().is_ok_and(|h| slot <= h)
            }
            None => range.parse::<u16>() == Ok(slot),
        })
}
