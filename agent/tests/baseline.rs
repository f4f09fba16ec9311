//! `skewscope baseline record|compare` end to end.
//!
//! - Over a fixture root (no privileges): a recording is a valid file and a page; bad
//!   input exits 2 naming the file and the field; usage errors exit 2.
//! - The pages in a real headless browser (Debian chromium over the DevTools protocol on
//!   a pipe): they render, the screenshot is not blank, the console has no error and no
//!   network request is made; a control page with an error and a request shows the check
//!   can fail.
//! - A lab with ground truth (root: netns, eBPF): a skewed UDP group recorded, then
//!   rebalanced (promote, LSI q95 lower), made worse (hold naming LSI) and resized
//!   (inconclusive). Every traffic loop is bounded.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod common;
use common::{lsi, privileged, CountingReaders, Netns, ADDR};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// A fresh scratch directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skewscope-baseline-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn skewscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args(args)
        .env_remove("SKEWSCOPE_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `baseline record` over the mlx4 fixture root: counters that do not move, two devices
/// (mlx4_core, ixgbe with an RSS table), no reuseport group.
fn record_fixture(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let root = testdata().join("roots/mlx4-40cpu");
    let out = dir.join(format!("{name}.json"));
    let html = dir.join(format!("{name}.html"));
    let run = skewscope(&[
        "--procfs",
        root.join("proc").to_str().unwrap(),
        "--sysfs",
        root.join("sys").to_str().unwrap(),
        "baseline",
        "record",
        "--duration",
        "0.6",
        "--interval",
        "0.2",
        "--ethtool-dir",
        root.join("ethtool").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&run);
    assert!(run.status.success(), "record failed: {stderr}");
    assert!(
        stderr.contains("skewscope: recorded"),
        "plain progress lines off a TTY: {stderr}"
    );
    (out, html)
}

#[test]
fn a_fixture_recording_is_a_valid_baseline_and_compares_with_itself() {
    let dir = scratch("fixture");
    let (a, _) = record_fixture(&dir, "a");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    assert_eq!(v["schema"], "skewscope.baseline/v1");
    assert_eq!(v["interrupted"], false);
    let cycles = v["cycles"].as_u64().unwrap();
    assert!((2..=4).contains(&cycles), "0.6 s at 0.2 s: {cycles} cycles");
    let devices = v["fingerprint"]["devices"].as_array().unwrap();
    let eth1 = devices.iter().find(|d| d["name"] == "eth1").unwrap();
    assert_eq!(eth1["driver"], "ixgbe");
    assert!(eth1["table_hash"].as_str().unwrap().starts_with("sha256:"));

    // The same file on both sides: nothing regressed, nothing changed; but 0.6 s is
    // fewer cycles than --min-cycles 5: too little data.
    let a = a.to_str().unwrap();
    let same = skewscope(&["baseline", "compare", a, a, "--min-cycles", "1"]);
    let (stdout, stderr) = text(&same);
    assert_eq!(same.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("verdict: PROMOTE (exit 0)"), "{stdout}");
    assert!(stdout.contains("matched on device name"), "{stdout}");
    let short = skewscope(&["baseline", "compare", a, a, "--min-cycles", "5"]);
    let (stdout, _) = text(&short);
    assert_eq!(short.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "before: {cycles} cycles recorded (--min-cycles 5)"
        )),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_ends_a_recording_early_and_still_writes_a_valid_file() {
    let dir = scratch("interrupt");
    let root = testdata().join("roots/mlx4-40cpu");
    let out = dir.join("early.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .arg("--procfs")
        .arg(root.join("proc"))
        .arg("--sysfs")
        .arg(root.join("sys"))
        .args([
            "baseline",
            "record",
            "--duration",
            "60",
            "--interval",
            "0.2",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still recording 10 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = lines.join().unwrap().join("\n");
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("interrupted after"), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["requested_secs"], 60.0);
    assert!(v["cycles"].as_u64().unwrap() >= 2, "{}", v["cycles"]);
    assert!(v["recorded_secs"].as_f64().unwrap() < 10.0);
    // Valid for compare too: the same file on both sides, its interruption noted.
    let out = out.to_str().unwrap();
    let same = skewscope(&["baseline", "compare", out, out, "--min-cycles", "1"]);
    let (stdout, _) = text(&same);
    assert_eq!(same.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("before: interrupted after"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_exits_2_naming_the_file_and_the_field() {
    let dir = scratch("bad");
    let (good, _) = record_fixture(&dir, "good");
    let good_text = std::fs::read_to_string(&good).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut newer: serde_json::Value = serde_json::from_str(&good_text).unwrap();
    newer["schema"] = "skewscope.baseline/v2".into();
    let snapshot = std::fs::read(testdata().join("golden/mlx4-40cpu.snapshot.json")).unwrap();
    let mut wrong_type: serde_json::Value = serde_json::from_str(&good_text).unwrap();
    wrong_type["devices"][1]["queues"][3]["table_share"] = "half".into();
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            write(
                "truncated.json",
                &good_text.as_bytes()[..good_text.len() / 2],
            ),
            "truncated: the JSON ends inside `",
        ),
        (
            write("snapshot.json", &snapshot),
            "field `schema`: \"skewscope.snapshot/v1\" is not skewscope.baseline/v1",
        ),
        (
            write("newer.json", newer.to_string().as_bytes()),
            "field `schema`: \"skewscope.baseline/v2\" was written by skewscope",
        ),
        (
            write("garbage.json", b"\x7fELF\x02\x01\x01 not a baseline"),
            "not JSON: ",
        ),
        (
            write("wrong-type.json", wrong_type.to_string().as_bytes()),
            "field `devices[1].queues[3].table_share`: invalid type: string \"half\"",
        ),
    ];
    let html = dir.join("never.html");
    for (bad, want) in &cases {
        for (before, after) in [(bad, &good), (&good, bad)] {
            let out = skewscope(&[
                "baseline",
                "compare",
                before.to_str().unwrap(),
                after.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
            ]);
            let (stdout, stderr) = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{}: {stdout}{stderr}",
                bad.display()
            );
            assert!(
                stderr.contains(&format!("skewscope: {}: {want}", bad.display())),
                "{}: want {want:?} in: {stderr}",
                bad.display()
            );
            assert!(stdout.is_empty(), "no verdict on bad input: {stdout}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    assert!(!html.exists(), "no page written from bad input");
    let missing = dir.join("missing.json");
    let out = skewscope(&[
        "baseline",
        "compare",
        missing.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out)
        .1
        .contains(&format!("{}: cannot read", missing.display())));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["baseline", "compare", "a.json"][..],
        &[
            "baseline",
            "compare",
            "a.json",
            "b.json",
            "--live",
            "--duration",
            "1",
        ],
        &["baseline", "compare", "a.json", "--duration", "1"],
        &["baseline", "record", "--out", "x.json"],
        &[
            "baseline",
            "record",
            "--duration",
            "nope",
            "--out",
            "x.json",
        ],
    ] {
        let out = skewscope(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out).1);
    }
    // A negative tolerance is refused before any file is read.
    let out = skewscope(&[
        "baseline",
        "compare",
        "a.json",
        "b.json",
        "--tolerance=-0.1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("--tolerance -0.1: must be a finite number ≥ 0"),
        "{}",
        text(&out).1
    );
}

// ---------------------------------------------------------------------------------------
// The headless browser.

/// What a headless chromium saw opening a page.
struct Visit {
    console_errors: Vec<String>,
    /// URLs requested besides the page itself.
    requests: Vec<String>,
    /// Share of the screenshot's pixels that are not (near) white.
    ink: f64,
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// chromium, or a skip (a failure under SKEWSCOPE_REQUIRE_PRIVILEGED=1, where `make deps`
/// has installed it).
fn browser() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        skewscope_test_support::cannot_run(
            "baseline report in a browser",
            "no chromium on PATH (scripts/deps.sh installs it)",
        );
    }
    found
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Opens `page` in headless chromium driven over --remote-debugging-pipe (commands on fd
/// 3, replies and events on fd 4, NUL-terminated JSON): collects console errors, log
/// errors, uncaught exceptions and every request, then takes a screenshot. Bounded.
fn visit(chromium: &Path, page: &Path) -> Visit {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let profile = scratch(&format!(
        "chromium-{}",
        page.file_stem().unwrap().to_string_lossy()
    ));
    let (to_chrome_r, to_chrome_w) = pipe();
    let (from_chrome_r, from_chrome_w) = pipe();
    let (cr, cw) = (to_chrome_r.as_raw_fd(), from_chrome_w.as_raw_fd());
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--remote-debugging-pipe",
        "--window-size=900,1600",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("about:blank")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    unsafe {
        cmd.pre_exec(move || {
            // Above 4 first, so neither lands on the other's target; dup2 clears CLOEXEC.
            let r = libc::fcntl(cr, libc::F_DUPFD, 10);
            let w = libc::fcntl(cw, libc::F_DUPFD, 10);
            if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start chromium");
    drop((to_chrome_r, from_chrome_w));
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(std::fs::File::from(from_chrome_r));
        let mut buf = Vec::new();
        while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
            buf.pop();
            if let Ok(v) = serde_json::from_slice(&buf) {
                if tx.send(v).is_err() {
                    break;
                }
            }
            buf.clear();
        }
    });
    let mut to_chrome = std::fs::File::from(to_chrome_w);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut events = Vec::new();
    let mut next_id = 0u64;
    let mut call = |method: &str,
                    params: serde_json::Value,
                    session: Option<&str>,
                    events: &mut Vec<serde_json::Value>| {
        next_id += 1;
        let mut msg = serde_json::json!({"id": next_id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        to_chrome.write_all(msg.to_string().as_bytes()).unwrap();
        to_chrome.write_all(b"\0").unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium: no reply to {method}"));
            if v["id"] == next_id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            events.push(v);
        }
    };
    let target = call(
        "Target.createTarget",
        serde_json::json!({"url": "about:blank"}),
        None,
        &mut events,
    );
    let session = call(
        "Target.attachToTarget",
        serde_json::json!({"targetId": target["targetId"], "flatten": true}),
        None,
        &mut events,
    )["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let s = Some(session.as_str());
    for domain in [
        "Runtime.enable",
        "Log.enable",
        "Network.enable",
        "Page.enable",
    ] {
        call(domain, serde_json::json!({}), s, &mut events);
    }
    call(
        "Page.navigate",
        serde_json::json!({"url": url}),
        s,
        &mut events,
    );
    // Until the load event, then a little longer for anything late.
    let loaded = |e: &serde_json::Value| e["method"] == "Page.loadEventFired";
    while !events.iter().any(loaded) {
        let left = deadline.saturating_duration_since(Instant::now());
        events.push(
            rx.recv_timeout(left)
                .expect("chromium: the page never loaded"),
        );
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while let Ok(e) = rx.recv_timeout(settle.saturating_duration_since(Instant::now())) {
        events.push(e);
    }
    let shot = call(
        "Page.captureScreenshot",
        serde_json::json!({"format": "png"}),
        s,
        &mut events,
    );
    let _ = call("Browser.close", serde_json::json!({}), None, &mut events);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&profile);

    let mut console_errors = Vec::new();
    let mut requests = Vec::new();
    for e in &events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" if p["type"] == "error" => {
                console_errors.push(p["args"].to_string())
            }
            "Runtime.exceptionThrown" => console_errors.push(p["exceptionDetails"].to_string()),
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                console_errors.push(p["entry"].to_string())
            }
            "Network.requestWillBeSent" => {
                let u = p["request"]["url"].as_str().unwrap_or_default();
                if u != url {
                    requests.push(u.to_string());
                }
            }
            _ => {}
        }
    }
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    Visit {
        console_errors,
        requests,
        ink: ink(&png),
    }
}

/// Standard base64 (the DevTools protocol's encoding of binary results).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| val(c) as u32).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | x << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Share of pixels of a PNG that are visibly not white.
fn ink(png_bytes: &[u8]) -> f64 {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG screenshot");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = &buf[..info.buffer_size()];
    let total = pixels.len() / channels;
    let inked = pixels
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|&c| c < 230))
        .count();
    inked as f64 / total.max(1) as f64
}

fn assert_clean(v: &Visit, what: &str) {
    assert!(
        v.console_errors.is_empty(),
        "{what}: console errors {:?}",
        v.console_errors
    );
    assert!(
        v.requests.is_empty(),
        "{what}: network requests {:?}",
        v.requests
    );
    assert!(
        v.ink > 0.02,
        "{what}: the screenshot is blank ({:.4} inked)",
        v.ink
    );
}

#[test]
fn the_pages_render_in_headless_chromium_without_errors_or_requests() {
    let Some(chromium) = browser() else { return };
    let dir = scratch("browser");
    // The check can fail: a page that errs, fetches and shows nothing is caught.
    let control = dir.join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><img src=\"http://127.0.0.1:9/x.png\" width=1 height=1>\
         <script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let v = visit(&chromium, &control);
    assert!(
        v.console_errors.iter().any(|e| e.contains("boom")),
        "{:?}",
        v.console_errors
    );
    assert!(
        v.requests
            .iter()
            .any(|u| u.starts_with("http://127.0.0.1:9/")),
        "{:?}",
        v.requests
    );
    assert!(v.ink < 0.001, "a white page: {}", v.ink);

    let (a, html_a) = record_fixture(&dir, "a");
    let (b, _) = record_fixture(&dir, "b");
    let cmp = dir.join("compare.html");
    let out = skewscope(&[
        "baseline",
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--min-cycles",
        "1",
        "--html",
        cmp.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    for page in [&html_a, &cmp] {
        let html = std::fs::read_to_string(page).unwrap();
        assert!(html.contains("<svg"), "inline SVG in {}", page.display());
        assert!(!html.contains("<script"), "no script in {}", page.display());
        assert_clean(&visit(&chromium, page), &page.display().to_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// The lab.

/// Traffic phases of the lab: which socket is hot and how hot.
const STOP: u8 = 0;
const SKEWED: u8 = 1;
const BALANCED: u8 = 2;
const WORSE: u8 = 3;

/// Sends two flows per socket every 10 ms, the hot socket's flows `mult` times as often:
/// 1 balanced, 4 skewed, 30 worse. Bounded: stops at STOP or after 120 s.
fn traffic(
    flows: Vec<Vec<UdpSocket>>,
    to: SocketAddr,
    phase: Arc<AtomicU8>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(120);
        while Instant::now() < end {
            let mult = match phase.load(Ordering::Relaxed) {
                STOP => return,
                SKEWED => 4,
                WORSE => 30,
                _ => 1,
            };
            for (i, per_socket) in flows.iter().enumerate() {
                let n = if i == 0 { mult } else { 1 };
                for f in per_socket {
                    for _ in 0..n {
                        let _ = f.send_to(b"skewscope-baseline-lab", to);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// Flags every lab recording and comparison shares: short cycles, this group only.
const LAB_RECORD: [&str; 4] = ["--duration", "3", "--interval", "0.5"];

/// A UDP reuseport group of 4 sockets on ADDR:`port` in a namespace of its own, and two
/// client flows per socket: the kernel's hash is fixed per 4-tuple, so sending one probe
/// per source port shows which socket each flow loads — the lab's ground truth.
fn lab_group(tag: &str, port: u16) -> (Netns, SocketAddr, Vec<UdpSocket>, Vec<Vec<UdpSocket>>) {
    let ns = Netns::new(tag);
    let group_addr: SocketAddr = format!("{ADDR}:{port}").parse().unwrap();
    let servers: Vec<UdpSocket> = ns.udp_group(group_addr, 4);
    for s in &servers {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    let base = 33000 + (port % 100) * 100;
    let candidates: Vec<UdpSocket> = ns.enter(|| {
        (0..64)
            .map(|i| UdpSocket::bind((ADDR, base + i)).unwrap())
            .collect()
    });
    let mut by_socket: Vec<Vec<UdpSocket>> = (0..4).map(|_| Vec::new()).collect();
    let mut buf = [0u8; 64];
    for c in candidates {
        c.send_to(b"probe", group_addr).unwrap();
        if let Some(i) = servers.iter().position(|s| s.recv(&mut buf).is_ok()) {
            if by_socket[i].len() < 2 {
                by_socket[i].push(c);
            }
        }
    }
    assert!(
        by_socket.iter().all(|f| f.len() == 2),
        "every socket got two flows"
    );
    (ns, group_addr, servers, by_socket)
}

#[test]
fn lab_skewed_group_rebalanced_promotes_worse_holds_resized_is_inconclusive() {
    if !privileged("lab_skewed_group_rebalanced_promotes_worse_holds_resized_is_inconclusive") {
        return;
    }
    let port = 9610;
    let (ns, group_addr, servers, by_socket) = lab_group("baseline", port);
    let readers = CountingReaders::start(servers);
    let phase = Arc::new(AtomicU8::new(SKEWED));
    let sender = traffic(by_socket, group_addr, phase.clone());

    let dir = scratch("lab");
    let path = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let record = |name: &str| {
        let mut args = vec!["baseline", "record"];
        args.extend(LAB_RECORD);
        let out = path(name);
        let html = path(&format!("{name}.html"));
        args.extend(["--out", &out, "--html", &html]);
        let run = skewscope(&args);
        assert!(run.status.success(), "record {name}: {}", text(&run).1);
    };
    // Ages and queue depths follow how fast the readers get a CPU on a host shared with
    // other builds; the lab's ground truth is the per-socket split (LSI), so their floors
    // are raised and the host guardrails left out (other tests flood this host).
    let port_s = port.to_string();
    let compare_args = |after: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["baseline", "compare", &path("before.json")]
            .map(String::from)
            .to_vec();
        v.extend(after.iter().map(|s| s.to_string()));
        v.extend(
            [
                "--port",
                &port_s,
                "--only",
                "groups",
                "--age-floor-us",
                "1000000",
                "--lqd-floor-bytes",
                "1000000000",
                "--json",
            ]
            .map(String::from),
        );
        v
    };
    let compare = |after: &[&str]| -> (i32, serde_json::Value, String) {
        let args = compare_args(after);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = skewscope(&args);
        let (stdout, stderr) = text(&out);
        let v: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
        (out.status.code().unwrap(), v, stdout)
    };
    let lsi_q95 = |c: &serde_json::Value| -> (f64, f64) {
        let row = c["groups"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == "LSI" && r["quantile"] == "q95")
            .unwrap()
            .clone();
        (
            row["before"].as_f64().unwrap(),
            row["after"].as_f64().unwrap(),
        )
    };

    // Skewed: one socket carries 4× its share.
    std::thread::sleep(Duration::from_millis(300));
    record("before.json");
    // Rebalanced: promote, LSI q95 lower.
    phase.store(BALANCED, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    record("balanced.json");
    let (code, c, out) = compare(&[&path("balanced.json")]);
    let (before, after) = lsi_q95(&c);
    eprintln!("rebalanced: LSI q95 {before:.3} → {after:.3}, exit {code}");
    assert_eq!(code, 0, "{out}");
    assert_eq!(c["verdict"], "promote");
    // Ground truth: the sockets' event rates are 4:1:1:1, then even.
    let skewed_truth = lsi(&[4, 1, 1, 1]);
    assert!(
        (before - skewed_truth).abs() < 0.1,
        "skewed LSI q95 {before}, truth {skewed_truth:.3}"
    );
    assert!(after < 0.1, "rebalanced LSI q95 {after}");
    assert_eq!(c["groups"][0]["match_method"], "same_netns");
    // Worse (recorded live by compare itself): hold, naming LSI.
    phase.store(WORSE, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let (code, c, out) = compare(&[
        "--live",
        "--duration",
        "3",
        "--interval",
        "0.5",
        "--out",
        &path("worse.json"),
    ]);
    let (before, after) = lsi_q95(&c);
    eprintln!("worse: LSI q95 {before:.3} → {after:.3}, exit {code}");
    assert_eq!(code, 1, "{out}");
    assert_eq!(c["verdict"], "hold");
    let worse_truth = lsi(&[30, 1, 1, 1]);
    assert!(
        (after - worse_truth).abs() < 0.1,
        "worse LSI q95 {after}, truth {worse_truth:.3}"
    );
    let regressions: Vec<&str> = c["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        regressions
            .iter()
            .any(|r| r.starts_with(&format!("udp {ADDR}:{port}: LSI q95"))),
        "{regressions:?}"
    );
    assert!(
        Path::new(&path("worse.json")).exists(),
        "--live --out keeps the live recording"
    );
    // Resized: a fifth member joins (a scale-out); balanced traffic, but not the same group.
    phase.store(BALANCED, Ordering::Relaxed);
    let fifth = ns.udp_member(group_addr);
    std::thread::sleep(Duration::from_millis(300));
    record("resized.json");
    let (code, c, out) = compare(&[&path("resized.json")]);
    eprintln!("resized: exit {code}");
    assert_eq!(code, 3, "{out}");
    assert_eq!(c["verdict"], "inconclusive");
    assert!(
        c["inconclusive"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().ends_with("group size 4 → 5")),
        "{}",
        c["inconclusive"]
    );

    phase.store(STOP, Ordering::Relaxed);
    sender.join().unwrap();
    drop(fifth);
    let truth = readers.stop();
    eprintln!("datagrams read per socket: {truth:?}");
    assert!(
        truth[0] > truth[1] * 3,
        "the hot socket carried the most: {truth:?}"
    );

    // The lab's pages in the browser too, when there is one.
    if let Some(chromium) = chromium() {
        let cmp = path("compare.html");
        let mut args = compare_args(&[&path("worse.json")]);
        args.extend(["--html".to_string(), cmp.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(skewscope(&args).status.code(), Some(1));
        for page in [path("before.json.html"), cmp] {
            let html = std::fs::read_to_string(&page).unwrap();
            assert!(html.contains("per-listener share"), "{page}");
            assert_clean(&visit(&chromium, Path::new(&page)), &page);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_recording_keeps_shadow_replays_and_the_flow_trace() {
    if !privileged("lab_recording_keeps_shadow_replays_and_the_flow_trace") {
        return;
    }
    let port = 9620;
    let (_ns, group_addr, servers, by_socket) = lab_group("baseline-shadow", port);
    let sports: Vec<Vec<u16>> = by_socket
        .iter()
        .map(|f| f.iter().map(|s| s.local_addr().unwrap().port()).collect())
        .collect();
    let readers = CountingReaders::start(servers);
    let phase = Arc::new(AtomicU8::new(SKEWED));
    let sender = traffic(by_socket, group_addr, phase.clone());
    let dir = scratch("lab-shadow");
    // A replay every second, so a short recording holds some.
    let config = dir.join("skewscope.toml");
    std::fs::write(&config, "[shadow]\ninterval_secs = 1\n").unwrap();
    let out = dir.join("shadow.json");
    std::thread::sleep(Duration::from_millis(300));
    let run = skewscope(&[
        "baseline",
        "record",
        "--duration",
        "5",
        "--interval",
        "0.5",
        "--config",
        config.to_str().unwrap(),
        "--shadow-candidate",
        "builtin:isolate-heavy",
        "--out",
        out.to_str().unwrap(),
    ]);
    phase.store(STOP, Ordering::Relaxed);
    sender.join().unwrap();
    readers.stop();
    assert!(run.status.success(), "{}", text(&run).1);
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();

    let want_hash = {
        let out = Command::new("sha256sum").arg(&config).output().unwrap();
        format!(
            "sha256:{}",
            String::from_utf8_lossy(&out.stdout)
                .split(' ')
                .next()
                .unwrap()
        )
    };
    assert_eq!(b["fingerprint"]["config_hash"], want_hash);

    let shadow = b["shadow"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["port"] == port)
        .unwrap_or_else(|| panic!("no shadow replay of port {port}: {}", b["shadow"]));
    assert!(shadow["replays"].as_u64().unwrap() >= 1, "{shadow}");
    assert_eq!(shadow["sockets"], 4);
    let policies: Vec<&str> = shadow["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["default", "builtin:isolate-heavy"], "{shadow}");
    assert!(
        shadow["policies"][0]["lsi"]["n"].as_u64().unwrap() >= 1,
        "{shadow}"
    );

    // The trace: exactly the lab's 8 flows to the group, the hot socket's two heaviest.
    let flows: Vec<&serde_json::Value> = b["flow_trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["dport"] == port)
        .collect();
    let mut got: Vec<u16> = flows
        .iter()
        .map(|f| f["sport"].as_u64().unwrap() as u16)
        .collect();
    got.sort_unstable();
    let mut want: Vec<u16> = sports.concat();
    want.sort_unstable();
    assert_eq!(got, want, "the lab's flows");
    let mut heaviest: Vec<u16> = flows[..2]
        .iter()
        .map(|f| f["sport"].as_u64().unwrap() as u16)
        .collect();
    heaviest.sort_unstable();
    let mut hot = sports[0].clone();
    hot.sort_unstable();
    assert_eq!(heaviest, hot, "the hot socket's flows carry 4× the weight");
    let _ = std::fs::remove_dir_all(&dir);
}
