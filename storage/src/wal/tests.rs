use std::sync::mpsc;

use super::*;

fn config(dir: &Path, segment_bytes: u64) -> WalConfig {
    WalConfig { dir: dir.to_path_buf(), segment_bytes, fsync: FsyncPolicy::Batch, queue_capacity: 1024 }
}

fn tenant() -> Tenant {
    Tenant::new("t1").expect("tenant")
}

/// Appends and waits for each completion; returns the sequence numbers.
fn append_all(wal: &Wal, signal: Signal, payloads: &[&str]) -> Vec<u64> {
    let (tx, rx) = mpsc::channel();
    for p in payloads {
        let tx = tx.clone();
        wal.append(
            (signal, Format::Otlp),
            tenant(),
            Bytes::copy_from_slice(p.as_bytes()),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .expect("queued");
    }
    payloads.iter().map(|_| rx.recv().expect("completed").expect("durable")).collect()
}

fn replay_all(replay: Replay) -> Vec<(u64, Signal, String)> {
    replay
        .map(|r| r.expect("readable"))
        .map(|r| (r.seq, r.signal, String::from_utf8_lossy(&r.payload).into_owned()))
        .collect()
}

#[test]
fn appended_records_are_replayed_after_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, replay) = Wal::open(config(dir.path(), 1 << 20), &mut Registry::default()).expect("open");
    assert_eq!(replay_all(replay).len(), 0);
    let seqs = append_all(&wal, Signal::Traces, &["a", "b", "c"]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    wal.shutdown();

    let (wal, replay) = Wal::open(config(dir.path(), 1 << 20), &mut Registry::default()).expect("reopen");
    let got = replay_all(replay);
    assert_eq!(got.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), seqs);
    // New records continue the sequence.
    let more = append_all(&wal, Signal::Logs, &["d"]);
    assert!(more[0] > seqs[2]);
    wal.shutdown();
}

#[test]
fn a_torn_tail_is_truncated_and_earlier_records_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(config(dir.path(), 1 << 20), &mut Registry::default()).expect("open");
    append_all(&wal, Signal::Metrics, &["one", "two"]);
    wal.shutdown();
    let seg = fs::read_dir(dir.path()).expect("dir").filter_map(|e| e.ok()).map(|e| e.path()).max().expect("segment");
    let mut f = OpenOptions::new().append(true).open(&seg).expect("open segment");
    f.write_all(&[200, 0, 0, 0, 1, 2, 3]).expect("write torn record");
    drop(f);

    let (wal, replay) = Wal::open(config(dir.path(), 1 << 20), &mut Registry::default()).expect("reopen");
    assert_eq!(replay_all(replay).iter().map(|r| r.2.clone()).collect::<Vec<_>>(), ["one", "two"]);
    append_all(&wal, Signal::Metrics, &["three"]);
    wal.shutdown();
    let (_wal, replay) = Wal::open(config(dir.path(), 1 << 20), &mut Registry::default()).expect("reopen twice");
    assert_eq!(replay_all(replay).iter().map(|r| r.2.clone()).collect::<Vec<_>>(), ["one", "two", "three"]);
}

#[test]
fn segments_are_deleted_only_once_every_signal_in_them_is_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Tiny segments: every batch rolls to a new one.
    let (wal, _) = Wal::open(config(dir.path(), 16), &mut Registry::default()).expect("open");
    let t = append_all(&wal, Signal::Traces, &["t1"]);
    let l = append_all(&wal, Signal::Logs, &["l1"]);
    append_all(&wal, Signal::Traces, &["t2"]);
    let count = || fs::read_dir(dir.path()).expect("dir").count();
    let before = count();
    assert!(before >= 3, "{before} segments");

    // Releasing traces alone frees the segment that holds only t1.
    assert_eq!(wal.release(Signal::Traces, t[0]).expect("release"), 1);
    assert_eq!(count(), before - 1);
    // The logs segment stays until logs are released.
    assert_eq!(wal.release(Signal::Traces, u64::MAX).expect("release"), 0);
    assert_eq!(wal.release(Signal::Logs, l[0]).expect("release"), 1);
    wal.shutdown();

    let (_wal, replay) = Wal::open(config(dir.path(), 16), &mut Registry::default()).expect("reopen");
    assert_eq!(replay_all(replay).iter().map(|r| r.2.clone()).collect::<Vec<_>>(), ["t2"]);
}

#[test]
fn a_full_queue_is_refused_not_blocked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path(), 1 << 20);
    cfg.queue_capacity = 1;
    let (wal, _) = Wal::open(cfg, &mut Registry::default()).expect("open");
    // Hold the writer thread inside a completion so that the queue fills.
    let (block_tx, block_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    wal.append(
        (Signal::Logs, Format::Otlp),
        tenant(),
        Bytes::from_static(b"x"),
        Box::new(move |_| {
            let _ = entered_tx.send(());
            let _ = block_rx.recv();
        }),
    )
    .expect("first");
    entered_rx.recv().expect("writer entered completion");
    wal.append((Signal::Logs, Format::Otlp), tenant(), Bytes::from_static(b"y"), Box::new(|_| {}))
        .expect("fills the queue");
    let refused = wal.append((Signal::Logs, Format::Otlp), tenant(), Bytes::from_static(b"z"), Box::new(|_| {}));
    assert!(matches!(refused, Err(AppendError::Full)));
    block_tx.send(()).expect("unblock");
    wal.shutdown();
    assert!(matches!(
        wal.append((Signal::Logs, Format::Otlp), tenant(), Bytes::new(), Box::new(|_| {})),
        Err(AppendError::Closed)
    ));
}
