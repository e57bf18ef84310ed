//! Presence, oversight, the one reload path and the background passes, on the in-memory store
//! with no server. One behaviour per test.

mod support {
    pub mod app;
}

use std::time::{Duration, Instant};

use callrouter::app::AppError;
use callrouter::routing::partition::{Partition, QueueRef};
use callrouter::routing::urgency::Urgency;
use callrouter::store::{NewTicket, Presence, StoreSettings, TicketState};
use support::app::{
    NEW_COOPERATOR, TL_TECH, app_on, demo_app, demo_copy, principal, routed, sample,
};

#[tokio::test]
async fn supervisors_see_their_own_cooperators_agents_only() {
    let app = demo_app();
    for agent in ["tl-agent-1", "lb-agent-1", "triage-1"] {
        let who = principal(&app, agent);
        app.set_agent_status(&who, Presence::Available)
            .await
            .expect("heartbeat");
    }
    let seen = |sup: &str| {
        let app = app.clone();
        let who = principal(&app, sup);
        async move {
            let mut ids: Vec<String> = app
                .list_agents(&who)
                .await
                .expect("agents")
                .into_iter()
                .map(|a| a.agent_id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(seen("tl-sup-1").await, ["tl-agent-1"]);
    assert_eq!(seen("platform-sup-1").await, ["triage-1"]);
    assert_eq!(
        seen("ops-1").await,
        ["lb-agent-1", "tl-agent-1", "triage-1"]
    );
}

#[tokio::test]
async fn queue_stats_count_waiting_tickets_and_present_agents() {
    let app = demo_app();
    routed(&app, "c-1").await;
    routed(&app, "c-2").await;
    let agent = principal(&app, "tl-agent-1");
    app.set_agent_status(&agent, Presence::Busy)
        .await
        .expect("heartbeat");
    let sup = principal(&app, "tl-sup-1");
    let overview = app
        .get_queue_stats(&sup, &[TL_TECH.to_owned()])
        .await
        .expect("stats");
    let depth: u64 = overview.queues.iter().map(|q| q.depth).sum();
    assert_eq!(depth, 2);
    let team = &overview.teams[0];
    assert_eq!(team.queue, QueueRef::new("touraine-logement", TL_TECH));
    assert_eq!(team.counts.queued, 2);
    assert_eq!(team.agents_by_presence.get(&Presence::Busy), Some(&1));
    let outsider = principal(&app, "lb-sup-1");
    assert!(matches!(
        app.get_queue_stats(&outsider, &[TL_TECH.to_owned()]).await,
        Err(AppError::Refused(_))
    ));
}

#[tokio::test]
async fn a_reload_swaps_the_configuration_and_counts() {
    let config = demo_copy("reload-ok");
    let app = app_on(&config, StoreSettings::default());
    let ops = principal(&app, "ops-1");
    let reloaded = app.reload_config(&ops).await.expect("reload");
    assert_eq!(reloaded.generation, 2);
    assert_eq!(app.current().generation, 2);
    let metrics = app.metrics().encode();
    assert_eq!(
        sample(&metrics, "callrouter_config_generation", &[]),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "callrouter_config_reloads_total",
            &[("result", "ok")]
        ),
        Some(1.0)
    );
    let _ = std::fs::remove_dir_all(config.parent().and_then(|p| p.parent()).expect("dir"));
}

#[tokio::test]
async fn a_broken_configuration_is_refused_and_the_old_one_serves() {
    let config = demo_copy("reload-refused");
    let app = app_on(&config, StoreSettings::default());
    let rules = config.with_file_name("rules.toml");
    let text = std::fs::read_to_string(&rules).expect("rules");
    std::fs::write(
        &rules,
        text.replace("team = \"contractor.roofs\"", "team = \"contractor.roofz\""),
    )
    .expect("break");
    let ops = principal(&app, "ops-1");
    let refused = app.reload_config(&ops).await.expect_err("broken");
    let AppError::ConfigRefused(problems) = refused else {
        panic!("not a refusal: {refused:?}");
    };
    assert!(
        problems.to_string().contains("contractor.roofz"),
        "{problems}"
    );
    assert_eq!(app.current().generation, 1);
    let metrics = app.metrics().encode();
    assert_eq!(
        sample(&metrics, "callrouter_config_generation", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "callrouter_config_reloads_total",
            &[("result", "refused")]
        ),
        Some(1.0)
    );
    routed(&app, "still-serving").await;
    let _ = std::fs::remove_dir_all(config.parent().and_then(|p| p.parent()).expect("dir"));
}

#[tokio::test]
async fn a_cooperator_added_by_reload_is_primed_and_reaped() {
    let config = demo_copy("reload-new");
    let app = app_on(&config, StoreSettings::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let reaper = {
        let app = app.clone();
        tokio::spawn(async move {
            app.run_reaper(Duration::from_millis(20), async move {
                let _ = stopped.await;
            })
            .await;
        })
    };
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(NEW_COOPERATOR);
    std::fs::write(&config, text).expect("add a cooperator");
    app.reload("test").await.expect("the new cooperator loads");
    let lh = Partition::parse("loire-habitat");
    assert!(app.current().router.partitions().contains(&lh));
    let metrics = app.metrics().encode();
    assert_eq!(
        sample(
            &metrics,
            "callrouter_lease_expiries_total",
            &[("cooperator", "loire-habitat")]
        ),
        Some(0.0),
        "primed before its first event"
    );

    // A ticket of the new partition, claimed under a short lease that nobody renews.
    let store = app.store();
    let created = store
        .create(NewTicket {
            call_id: "lh-1".to_owned(),
            partition: lh.clone(),
            cooperator_id: Some("loire-habitat".to_owned()),
            team_id: "loire-habitat.front-desk".to_owned(),
            urgency: Urgency::U3,
            issue_type: "administrative.lease".to_owned(),
            building_id: None,
            address: None,
            incident_id: None,
            sla_due_at: 0,
            escalation_team: lh.supervisor_team(),
            details: String::new(),
            within: std::time::Duration::from_secs(60),
        })
        .await
        .expect("create");
    let queue = QueueRef::new(lh.clone(), "loire-habitat.front-desk");
    store
        .claim_next("lh-agent", &[queue], Duration::from_millis(50), None)
        .await
        .expect("claim")
        .expect("the ticket");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = store
            .get(&created.ticket.ticket_id)
            .await
            .expect("get")
            .expect("ticket");
        if now.state == TicketState::Queued {
            assert_eq!(now.attempts, 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reaper never reached the new partition"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = app.metrics().encode();
    assert_eq!(
        sample(
            &metrics,
            "callrouter_lease_expiries_total",
            &[("cooperator", "loire-habitat")]
        ),
        Some(1.0)
    );
    stop.send(()).expect("the reaper runs");
    tokio::time::timeout(Duration::from_secs(2), reaper)
        .await
        .expect("the reaper stops on shutdown")
        .expect("join");
    let _ = std::fs::remove_dir_all(config.parent().and_then(|p| p.parent()).expect("dir"));
}

#[tokio::test]
async fn the_sampler_exports_queue_depths_of_the_configuration_in_force() {
    let app = demo_app();
    routed(&app, "c-1").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let app = app.clone();
        tokio::spawn(async move {
            app.run_sampler(Duration::from_millis(20), async move {
                let _ = stopped.await;
            })
            .await;
        })
    };
    let labels = [
        ("cooperator", "touraine-logement"),
        ("team", TL_TECH),
        ("urgency", "U2"),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    while sample(&app.metrics().encode(), "callrouter_queue_depth", &labels) != Some(1.0) {
        assert!(Instant::now() < deadline, "no depth sampled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).expect("the sampler runs");
    tokio::time::timeout(Duration::from_secs(2), sampler)
        .await
        .expect("the sampler stops on shutdown")
        .expect("join");
}
