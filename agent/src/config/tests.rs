//! Tests of config resolution: precedence, the environment's conventions, the documented
//! examples and the refusals.

use super::*;

#[test]
fn probe_hooks_and_age_sampling_from_flag_then_file() {
    use skewscope_probes::{ListenerHook, ReadHook};
    let file = |text: &str| FileConfig::parse(text, Path::new("t.toml")).unwrap().probes;
    let none = ProbeChoiceFlags::default();
    assert_eq!(
        resolve_probe_choices(&none, &file("")).unwrap(),
        ProbeChoices {
            listener_hook: None,
            rx_read_hook: None,
            age_sample_every: 16,
        }
    );
    let forced = file(
        "[probes]\nlistener_hook = \"kprobe\"\nrx_read_hook = \"tracepoints\"\nage_sample_every = 4",
    );
    assert_eq!(
        resolve_probe_choices(&none, &forced).unwrap(),
        ProbeChoices {
            listener_hook: Some(ListenerHook::KprobeSockDefReadable),
            rx_read_hook: Some(ReadHook::Tracepoints),
            age_sample_every: 4,
        }
    );
    // Flags win, "auto" included.
    let flags = ProbeChoiceFlags {
        listener_hook: Some("auto".into()),
        rx_read_hook: Some("fentry".into()),
        age_sample_every: Some(1),
    };
    assert_eq!(
        resolve_probe_choices(&flags, &forced).unwrap(),
        ProbeChoices {
            listener_hook: None,
            rx_read_hook: Some(ReadHook::FentryConsumeUdp),
            age_sample_every: 1,
        }
    );
    for (bad, what) in [
        (
            "[probes]\nlistener_hook = \"kretprobe\"",
            "probes.listener_hook",
        ),
        ("[probes]\nrx_read_hook = \"tp_btf\"", "probes.rx_read_hook"),
        ("[probes]\nage_sample_every = 0", "probes.age_sample_every"),
    ] {
        let err = resolve_probe_choices(&none, &file(bad))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(what), "{bad:?}: {err}");
    }
    let err = resolve_probe_choices(
        &ProbeChoiceFlags {
            listener_hook: Some("fexit".into()),
            ..ProbeChoiceFlags::default()
        },
        &file(""),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "--listener-hook: \"fexit\" is not one of auto, tp_btf, fentry, kprobe"
    );
}

#[test]
fn probe_sampling_from_flag_then_file() {
    let file = |text: &str| FileConfig::parse(text, Path::new("t.toml")).unwrap().probes;
    let resolve = |flag, text: &str| resolve_probe_sampling(flag, &file(text));
    assert_eq!(resolve(None, "").unwrap(), ProbeSampling::DEFAULT);
    assert_eq!(
        resolve(None, "[probes]\ncpu_budget = 0.05\npacket_cost_ns = 200").unwrap(),
        ProbeSampling::Budget {
            cpu_fraction: 0.05,
            packet_cost_ns: 200.0,
            calibrate: true,
        }
    );
    assert_eq!(
        resolve(
            None,
            "[probes]
packet_cost_ns = 900
calibrate = false"
        )
        .unwrap(),
        ProbeSampling::Budget {
            cpu_fraction: DEFAULT_CPU_BUDGET,
            packet_cost_ns: 900.0,
            calibrate: false,
        }
    );
    assert_eq!(
        resolve(None, "[probes]\nduty = 0.1").unwrap(),
        ProbeSampling::Fixed { duty: 0.1 }
    );
    assert_eq!(
        resolve(None, "[probes]\ncontinuous = true").unwrap(),
        ProbeSampling::Continuous
    );
    // The flag wins over the file.
    assert_eq!(
        resolve(Some(ProbeBudgetFlag::Off), "[probes]\nduty = 0.1").unwrap(),
        ProbeSampling::Continuous
    );
    for bad in [
        "[probes]\nduty = 0.1\ncontinuous = true",
        "[probes]\ncpu_budget = 0",
        "[probes]\ncpu_budget = 1.5",
        "[probes]\npacket_cost_ns = -1",
    ] {
        let err = resolve(None, bad).unwrap_err().to_string();
        assert!(err.starts_with("probes"), "{bad:?}: {err}");
    }
    assert!(FileConfig::parse("[probes]\nbudget = 1", Path::new("t.toml")).is_err());
    assert_eq!("off".parse::<ProbeBudgetFlag>(), Ok(ProbeBudgetFlag::Off));
    assert_eq!(
        "0.5".parse::<ProbeBudgetFlag>(),
        Ok(ProbeBudgetFlag::Fraction(0.5))
    );
    assert!("0".parse::<ProbeBudgetFlag>().is_err());
    assert!("x".parse::<ProbeBudgetFlag>().is_err());
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn file(text: &str) -> FileConfig {
    FileConfig::parse(text, Path::new("test.toml")).unwrap()
}

fn resolve_with(flags: &Overrides, f: &FileConfig, e: &[(&str, &str)]) -> Settings {
    resolve(flags, f, &env(e)).unwrap()
}

#[test]
fn nothing_configured_exports_nothing() {
    let s = resolve_with(&Overrides::default(), &FileConfig::default(), &[]);
    assert!(!s.telemetry.enabled());
    assert_eq!(s.interval_secs, 1.0);
    assert_eq!(s.telemetry.export_interval, DEFAULT_EXPORT_INTERVAL);
    assert_eq!(s.telemetry.limits, Limits::default());
}

#[test]
fn selection_hook_is_off_unless_asked_and_names_its_hooks() {
    use skewscope_probes::{SelectionChoice, SelectionHook};
    let hook = |text: &str| {
        FileConfig::parse(text, Path::new("t.toml"))
            .map(|f| f.probes.selection_hook.unwrap_or_default().choice())
    };
    assert_eq!(hook("").unwrap(), None);
    assert_eq!(hook("[probes]\nselection_hook = \"off\"").unwrap(), None);
    assert_eq!(
        hook("[probes]\nselection_hook = \"auto\"").unwrap(),
        Some(SelectionChoice::Auto)
    );
    assert_eq!(
        hook("[probes]\nselection_hook = \"kprobe\"").unwrap(),
        Some(SelectionChoice::Only(SelectionHook::Kprobe))
    );
    assert!(hook("[probes]\nselection_hook = \"fentry\"").is_err());
    // The flag's spelling is the file's.
    assert_eq!(
        "fexit".parse::<SelectionHookSetting>(),
        Ok(SelectionHookSetting::Fexit)
    );
    assert!("kretprobe".parse::<SelectionHookSetting>().is_err());
}

#[test]
fn the_documented_example_parses() {
    let text = include_str!("../../../docs/configuration.md")
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block in docs/configuration.md");
    let f = file(text);
    assert_eq!(f.otlp.protocol, Some(OtlpProtocol::Grpc));
    assert!(f.prometheus.listen.is_some());
}

#[test]
fn unknown_keys_are_refused() {
    let e = FileConfig::parse("[otlp]\nendpont = \"x\"\n", Path::new("t.toml")).unwrap_err();
    assert!(e.to_string().contains("endpont"), "{e}");
    assert!(FileConfig::parse("intervl_secs = 1\n", Path::new("t.toml")).is_err());
}

#[test]
fn flags_beat_environment_beat_file() {
    let f = file(
        "interval_secs = 2.0\n[otlp]\nendpoint = \"http://file:4318\"\ntimeout_secs = 3\n\
         headers = { \"X-A\" = \"file\", \"x-b\" = \"file\", \"x-c\" = \"file\" }\n\
         export_interval_secs = 30\n[limits]\ntop_flows = 3\nmax_groups = 4\n",
    );
    // File only.
    let s = resolve_with(&Overrides::default(), &f, &[]);
    let o = s.telemetry.otlp.unwrap();
    assert_eq!(o.endpoint, "http://file:4318/v1/metrics");
    assert_eq!(o.timeout, Duration::from_secs(3));
    assert_eq!(s.interval_secs, 2.0);
    assert_eq!(s.telemetry.export_interval, Duration::from_secs(30));
    assert_eq!(s.telemetry.limits.top_flows, 3);

    // The environment beats the file.
    let e = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318/"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-b=env,x-c=env%20c"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
    ];
    let s = resolve_with(&Overrides::default(), &f, &e);
    let o = s.telemetry.otlp.unwrap();
    assert_eq!(o.endpoint, "http://env:4318/v1/metrics");
    assert_eq!(o.timeout, Duration::from_millis(1500));
    assert_eq!(o.headers["x-a"], "file");
    assert_eq!(o.headers["x-c"], "env c");
    assert_eq!(s.telemetry.export_interval, Duration::from_secs(5));

    // Flags beat both.
    let flags = Overrides {
        otlp_endpoint: Some("http://flag:4317".into()),
        otlp_protocol: Some(OtlpProtocol::Grpc),
        otlp_headers: vec!["X-C=flag".into()],
        otlp_timeout_secs: Some(0.5),
        export_interval_secs: Some(1.0),
        limits: LimitsFile {
            top_flows: Some(7),
            ..LimitsFile::default()
        },
        interval_secs: Some(0.25),
        ..Overrides::default()
    };
    let s = resolve(&flags, &f, &env(&e)).unwrap();
    let o = s.telemetry.otlp.unwrap();
    assert_eq!(o.endpoint, "http://flag:4317");
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
    assert_eq!(o.timeout, Duration::from_millis(500));
    assert_eq!(
        o.headers,
        BTreeMap::from([
            ("x-a".into(), "file".into()),
            ("x-b".into(), "env".into()),
            ("x-c".into(), "flag".into())
        ])
    );
    assert_eq!(s.interval_secs, 0.25);
    assert_eq!(s.telemetry.export_interval, Duration::from_secs(1));
    assert_eq!(s.telemetry.limits.top_flows, 7);
    assert_eq!(s.telemetry.limits.max_groups, 4);
}

#[test]
fn metrics_specific_variables_win_and_are_used_as_is() {
    let e = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://specific:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
    ];
    let o = resolve_with(&Overrides::default(), &FileConfig::default(), &e)
        .telemetry
        .otlp
        .unwrap();
    assert_eq!(o.endpoint, "http://specific:4318/custom");
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
}

#[test]
fn grpc_endpoints_keep_their_path_and_schemeless_ones_get_tls() {
    let e = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ];
    let o = resolve_with(&Overrides::default(), &FileConfig::default(), &e)
        .telemetry
        .otlp
        .unwrap();
    assert_eq!(o.endpoint, "https://collector:4317");
    let mut e = e.to_vec();
    e.push(("OTEL_EXPORTER_OTLP_INSECURE", "true"));
    let o = resolve_with(&Overrides::default(), &FileConfig::default(), &e)
        .telemetry
        .otlp
        .unwrap();
    assert_eq!(o.endpoint, "http://collector:4317");
}

#[test]
fn bad_environment_values_are_ignored_with_a_warning() {
    let e = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ];
    let s = resolve_with(&Overrides::default(), &FileConfig::default(), &e);
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    let o = s.telemetry.otlp.unwrap();
    assert_eq!(o.timeout, DEFAULT_TIMEOUT);
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
}

#[test]
fn sdk_disabled_turns_otlp_off() {
    let e = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_SDK_DISABLED", "true"),
    ];
    assert!(
        resolve_with(&Overrides::default(), &FileConfig::default(), &e)
            .telemetry
            .otlp
            .is_none()
    );
}

#[test]
fn tls_needs_https_and_pairs() {
    let flags = Overrides {
        otlp_endpoint: Some("http://c:4317".into()),
        otlp_ca_file: Some("/ca.pem".into()),
        ..Overrides::default()
    };
    assert!(resolve(&flags, &FileConfig::default(), &env(&[])).is_err());
    let flags = Overrides {
        otlp_endpoint: Some("https://c:4317".into()),
        otlp_client_cert_file: Some("/c.pem".into()),
        ..Overrides::default()
    };
    assert!(resolve(&flags, &FileConfig::default(), &env(&[])).is_err());
    let e = [
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/env/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/env/c.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/env/k.pem"),
    ];
    let flags = Overrides {
        otlp_endpoint: Some("https://c:4317".into()),
        ..Overrides::default()
    };
    let o = resolve(&flags, &FileConfig::default(), &env(&e))
        .unwrap()
        .telemetry
        .otlp
        .unwrap();
    assert_eq!(o.ca_file.as_deref(), Some(Path::new("/env/ca.pem")));
    assert_eq!(o.client_key_file.as_deref(), Some(Path::new("/env/k.pem")));
}

#[test]
fn resource_attributes_layer_in_order() {
    let f = file(
        "[resource]\nattributes = { \"k8s.node.name\" = \"from-file\", \"team\" = \"net\" }\n",
    );
    let e = [
        ("K8S_NODE_NAME", "node-1"),
        ("K8S_POD_NAME", "skewscope-abc"),
        ("K8S_NAMESPACE", "observability"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=edge,deployment.environment.name=prod%2Feu",
        ),
        ("OTEL_SERVICE_NAME", "skewscope-canary"),
    ];
    let r = resolve_with(&Overrides::default(), &f, &e)
        .telemetry
        .resource;
    assert_eq!(r["k8s.node.name"], "from-file");
    assert_eq!(r["k8s.pod.name"], "skewscope-abc");
    assert_eq!(r["k8s.namespace.name"], "observability");
    assert_eq!(r["team"], "edge");
    assert_eq!(r["deployment.environment.name"], "prod/eu");
    assert_eq!(r["service.name"], "skewscope-canary");
}

#[test]
fn limits_are_checked() {
    let flags = Overrides {
        limits: LimitsFile {
            top_flows: Some(0),
            ..LimitsFile::default()
        },
        ..Overrides::default()
    };
    let err = resolve(&flags, &FileConfig::default(), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("top_flows"), "{err}");
    let f = file("[limits]\nmax_cpus = 0\n");
    assert!(resolve(&Overrides::default(), &f, &env(&[])).is_err());
    // A large bound is config's to accept; the sinks check the series it allows.
    let flags = Overrides {
        limits: LimitsFile {
            max_devices: Some(100),
            ..LimitsFile::default()
        },
        ..Overrides::default()
    };
    let s = resolve(&flags, &FileConfig::default(), &env(&[])).unwrap();
    assert_eq!(s.telemetry.limits.max_devices, 100);
}

mod model_section {
    use super::*;

    /// The `[model]` example of docs/configuration.md, verbatim.
    fn doc_example() -> String {
        let doc = include_str!("../../../docs/configuration.md");
        let start = doc.find("```toml\n[model]").expect("the [model] example") + "```toml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        doc[start..end].to_string()
    }

    #[test]
    fn documented_model_example_parses_and_applies() {
        let file = FileConfig::parse(&doc_example(), Path::new("docs/configuration.md")).unwrap();
        let cfg = file.model_config().unwrap();
        assert_eq!(cfg.listener.bci_window_secs, 60.0);
        assert_eq!(cfg.states.regime.min_dwell_secs, 3.0);
        let orange = cfg.states.regime.group.orange.lsi.unwrap();
        assert_eq!((orange.enter, orange.exit), (0.5, 0.35));
    }

    #[test]
    fn bad_model_values_name_the_key() {
        let file =
            FileConfig::parse("[model]\nbci_window_secs = -1\n", Path::new("x.toml")).unwrap();
        let err = file.model_config().unwrap_err().to_string();
        assert!(err.contains("model.bci_window_secs"), "{err}");
        let err = FileConfig::parse("[model]\nnope = 1\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}

mod shadow_section {
    use super::*;

    fn file(text: &str) -> FileConfig {
        FileConfig::parse(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn shadow_is_off_by_default() {
        let s = resolve_shadow(&[], &FileConfig::default().shadow).unwrap();
        assert!(!s.enabled());
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.max_flows, DEFAULT_SHADOW_MAX_FLOWS);
    }

    #[test]
    fn file_candidates_and_flags_that_replace_them() {
        let f = file(
            "[shadow]\ncandidates = [\"builtin:isolate-heavy\", \"default\", \"./sel.bpf.o\", \
             \"builtin:isolate-heavy\"]\ninterval_secs = 2\nmax_flows = 100\n",
        );
        let s = resolve_shadow(&[], &f.shadow).unwrap();
        let names: Vec<String> = s.candidates.iter().map(|c| c.policy_name()).collect();
        // The default is always replayed anyway; duplicates once.
        assert_eq!(names, ["builtin:isolate-heavy", "./sel.bpf.o"]);
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.max_flows, 100);
        let s = resolve_shadow(&["builtin:cpu".into()], &f.shadow).unwrap();
        let names: Vec<String> = s.candidates.iter().map(|c| c.policy_name()).collect();
        assert_eq!(names, ["builtin:cpu"]);
        assert_eq!(
            s.interval,
            Duration::from_secs(2),
            "the flag replaces only the list"
        );
    }

    #[test]
    fn bad_shadow_values_name_the_key_and_candidate() {
        let e = resolve_shadow(
            &[],
            &file("[shadow]\ncandidates = [\"builtin:least\"]\n").shadow,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("shadow.candidates") && e.contains("builtin:least"),
            "{e}"
        );
        let e = resolve_shadow(&["cpu".into()], &ShadowFile::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--shadow-candidate") && e.contains("\"cpu\""),
            "{e}"
        );
        let nine: Vec<String> = (0..9).map(|i| format!("./c{i}.o")).collect();
        assert!(resolve_shadow(&nine, &ShadowFile::default()).is_err());
        for bad in ["interval_secs = 0", "max_flows = 0", "max_flows = 1000000"] {
            let f = file(&format!(
                "[shadow]\ncandidates = [\"builtin:cpu\"]\n{bad}\n"
            ));
            assert!(resolve_shadow(&[], &f.shadow).is_err(), "{bad}");
        }
        assert!(FileConfig::parse("[shadow]\ncandidate = []\n", Path::new("t.toml")).is_err());
    }
}

/// A config file for the reload tests, in a directory of its own.
fn reload_file(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skewscope-reload-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("skewscope.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn reload_applies_model_and_limits_and_names_what_needs_a_restart() {
    let started = "interval_secs = 1\n[prometheus]\nlisten = \"127.0.0.1:9464\"\n";
    let running = FileConfig::parse(started, Path::new("t.toml")).unwrap();
    let path = reload_file(
        "valid",
        "interval_secs = 2\n[prometheus]\nlisten = \"127.0.0.1:9465\"\n\
         [limits]\nmax_cpus = 4\n[model]\nhot_queue_factor = 2.5\ntop_flows = 64\n\
         [model.regimes.group.orange]\nlsi = { enter = 0.6, exit = 0.4 }\n",
    );
    let r = reload(&path, &running, &Overrides::default(), &|_| None).unwrap();
    assert_eq!(r.limits.max_cpus, 4);
    assert_eq!(r.limits.max_groups, Limits::default().max_groups);
    assert_eq!(r.model.hot_queue_factor, 2.5);
    assert_eq!(r.model.listener.top_flows, 64);
    assert_ne!(r.model, crate::model::ModelConfig::default());
    assert_eq!(r.needs_restart, vec!["interval_secs", "prometheus.listen"]);

    // Flags still win over the reloaded file.
    let flags = Overrides {
        limits: LimitsFile {
            max_cpus: Some(8),
            ..LimitsFile::default()
        },
        ..Overrides::default()
    };
    let r = reload(&path, &running, &flags, &|_| None).unwrap();
    assert_eq!(r.limits.max_cpus, 8);

    // The same file again: nothing needs a restart.
    std::fs::write(&path, started).unwrap();
    let r = reload(&path, &running, &Overrides::default(), &|_| None).unwrap();
    assert!(r.needs_restart.is_empty(), "{:?}", r.needs_restart);
    assert_eq!(r.model, crate::model::ModelConfig::default());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn reload_refuses_an_invalid_file_naming_file_and_key() {
    let running = FileConfig::default();
    let cases = [
        // A key the file format does not have.
        ("[model]\nhot_queue_factr = 2\n", "hot_queue_factr"),
        // A value the key does not take.
        ("[model]\nhot_queue_factor = -1\n", "model.hot_queue_factor"),
        ("[limits]\nmax_cpus = 0\n", "max_cpus"),
        ("[model]\ntop_flows = 0\n", "model.top_flows"),
        (
            "[model.regimes.group.orange]\nlsi = { enter = 0.3, exit = 0.4 }\n",
            "model.regimes",
        ),
        // Keys that need a restart are still validated.
        ("[probes]\nduty = 2\n", "probes.duty"),
        (
            "[shadow]\ncandidates = [\"builtin:nope\"]\n",
            "shadow.candidates",
        ),
        // Not TOML at all.
        ("[model\n", "skewscope.toml"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = reload_file(&format!("invalid{i}"), text);
        let err = reload(&path, &running, &Overrides::default(), &|_| None)
            .expect_err(text)
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err} does not name {key}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
    // A file that is gone is refused too, naming it.
    let err = reload(
        Path::new("/nonexistent/skewscope.toml"),
        &running,
        &Overrides::default(),
        &|_| None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/skewscope.toml"));
}
