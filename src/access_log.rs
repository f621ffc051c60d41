//! The access log: one line per request on target `om_gateway::access`.
//!
//! With `logFormat: json` (the default) a line is written by a formatter for this one shape into a
//! per-thread buffer, and the buffers go to the log writer thread (`telemetry`'s non-blocking
//! writer) in batches: when a buffer holds `BATCH_BYTES`, else `FLUSH_INTERVAL` after its first
//! line, and at shutdown (`flush`). The bytes are those tracing-subscriber's JSON formatter writes
//! for the same event (field names, order, number and string encoding, timestamp); a test compares
//! the two. Order is kept within a thread (a buffer is sent while its lock is held), nothing is
//! dropped (the writer is not lossy), and the `OM_GATEWAY_LOG` filter still decides whether the
//! line is written. With `logFormat: text`, or before `install` (tests that build a gateway in
//! process), the line goes through `tracing` as before.

use std::cell::{OnceCell, RefCell};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_appender::non_blocking::NonBlocking;

/// A buffer this large goes to the writer at once, from the thread that filled it.
const BATCH_BYTES: usize = 16 * 1024;
/// The longest a line waits in a buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);

/// What the access log says about one request.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub upstream_ms: Option<f64>,
    pub principal: Option<&'a str>,
    pub token: Option<&'a str>,
    pub reason: &'a str,
}

/// Log one request: batched when `install` ran, else through `tracing`.
pub fn record(line: &AccessLine<'_>) {
    if !tracing::enabled!(target: "om_gateway::access", tracing::Level::INFO) {
        return;
    }
    match SINK.get() {
        Some(sink) => sink.append(line),
        None => through_tracing(line),
    }
}

fn through_tracing(line: &AccessLine<'_>) {
    tracing::info!(
        target: "om_gateway::access",
        request_id = line.request_id,
        method = %line.method,
        route = %line.route,
        status = line.status,
        latency_ms = line.latency_ms,
        upstream_ms = line.upstream_ms,
        principal = line.principal,
        token = line.token,
        reason = line.reason,
    );
}

/// Send every buffered line to the writer and write later lines unbuffered; called before the
/// writer is shut down.
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.closed.store(true, Ordering::SeqCst);
        sink.flush_all();
        if let Some(flusher) = sink.flusher.get() {
            flusher.unpark();
        }
    }
}

/// Route JSON access lines through per-thread buffers into `writer` (once per process; later calls
/// are ignored, as `telemetry::init` ignores them).
pub fn install(writer: NonBlocking) {
    let sink = Sink {
        writer: Mutex::new(writer),
        buffers: Mutex::new(Vec::new()),
        pending: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        flusher: OnceLock::new(),
    };
    if SINK.set(sink).is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("om-gateway-access-log".into())
        .spawn(flusher_loop);
    match (spawned, SINK.get()) {
        (Ok(handle), Some(sink)) => {
            let _ = sink.flusher.set(handle.thread().clone());
        }
        // No flusher thread: write every line at once (closed = unbuffered).
        (_, Some(sink)) => sink.closed.store(true, Ordering::SeqCst),
        (_, None) => {}
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

type Buffer = Arc<Mutex<Vec<u8>>>;

thread_local! {
    static LOCAL: OnceCell<Buffer> = const { OnceCell::new() };
}

struct Sink {
    /// A clone of the log writer; `NonBlocking::write` sends one message per call.
    writer: Mutex<NonBlocking>,
    /// Every thread's buffer, for the flusher and `flush`.
    buffers: Mutex<Vec<Buffer>>,
    /// Some buffer went from empty to non-empty since the flusher last looked.
    pending: AtomicBool,
    /// After `flush`: no more buffering.
    closed: AtomicBool,
    flusher: OnceLock<std::thread::Thread>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Sink {
    fn local_buffer(&self) -> Buffer {
        LOCAL.with(|cell| {
            cell.get_or_init(|| {
                let buffer: Buffer = Arc::new(Mutex::new(Vec::with_capacity(BATCH_BYTES * 2)));
                lock(&self.buffers).push(buffer.clone());
                buffer
            })
            .clone()
        })
    }

    fn append(&self, line: &AccessLine<'_>) {
        let buffer = self.local_buffer();
        let mut guard = lock(&buffer);
        let was_empty = guard.is_empty();
        write_json(&mut guard, line, SystemTime::now());
        if guard.len() >= BATCH_BYTES || self.closed.load(Ordering::Relaxed) {
            self.send(&mut guard);
        } else if was_empty && !self.pending.swap(true, Ordering::AcqRel) {
            if let Some(flusher) = self.flusher.get() {
                flusher.unpark();
            }
        }
    }

    /// Hand the buffer's lines to the writer thread; the caller holds the buffer's lock, so a
    /// thread's lines reach the writer in the order it wrote them.
    fn send(&self, buffer: &mut Vec<u8>) {
        if buffer.is_empty() {
            return;
        }
        // The non-blocking writer never fails a write (it blocks when its queue is full).
        let _ = lock(&self.writer).write_all(buffer);
        buffer.clear();
    }

    fn flush_all(&self) {
        let buffers: Vec<Buffer> = lock(&self.buffers).clone();
        for buffer in buffers {
            self.send(&mut lock(&buffer));
        }
    }
}

fn flusher_loop() {
    let Some(sink) = SINK.get() else { return };
    loop {
        std::thread::park();
        if sink.closed.load(Ordering::SeqCst) {
            sink.flush_all();
            return;
        }
        std::thread::sleep(FLUSH_INTERVAL);
        sink.pending.store(false, Ordering::Release);
        sink.flush_all();
    }
}

/// The line tracing-subscriber's JSON formatter writes for the access event (`flatten_event`,
/// target on, no spans): `{"timestamp":…,"level":"INFO",<fields in order, absent ones
/// omitted>,"target":"om_gateway::access"}` and a newline. Strings and numbers are encoded by
/// serde_json, as tracing-subscriber does.
pub fn write_json(out: &mut Vec<u8>, line: &AccessLine<'_>, now: SystemTime) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"request_id\":");
    json_str(out, line.request_id);
    out.extend_from_slice(b",\"method\":");
    json_str(out, line.method);
    out.extend_from_slice(b",\"route\":");
    json_str(out, line.route);
    out.extend_from_slice(b",\"status\":");
    write_status(out, line.status);
    out.extend_from_slice(b",\"latency_ms\":");
    json_f64(out, line.latency_ms);
    if let Some(upstream) = line.upstream_ms {
        out.extend_from_slice(b",\"upstream_ms\":");
        json_f64(out, upstream);
    }
    if let Some(principal) = line.principal {
        out.extend_from_slice(b",\"principal\":");
        json_str(out, principal);
    }
    if let Some(token) = line.token {
        out.extend_from_slice(b",\"token\":");
        json_str(out, token);
    }
    out.extend_from_slice(b",\"reason\":");
    json_str(out, line.reason);
    out.extend_from_slice(b",\"target\":\"om_gateway::access\"}\n");
}

fn json_str(out: &mut Vec<u8>, value: &str) {
    let plain = value
        .bytes()
        .all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\' && byte < 0x7f);
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

fn json_f64(out: &mut Vec<u8>, value: f64) {
    let _ = serde_json::to_writer(&mut *out, &value);
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`, as tracing-subscriber's `SystemTime` timer writes it (UTC,
/// microseconds, truncated). The part up to the seconds changes once a second: each thread keeps
/// it and writes only the microseconds per line.
fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let (secs, micros) = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => (since.as_secs() as i64, since.subsec_micros()),
        Err(before) => {
            let before = before.duration();
            let micros = before.subsec_micros();
            if micros == 0 {
                (-(before.as_secs() as i64), 0)
            } else {
                (-(before.as_secs() as i64) - 1, 1_000_000 - micros)
            }
        }
    };
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != Some(secs) {
            cached.1.clear();
            write_second(&mut cached.1, secs);
            cached.0 = Some(secs);
        }
        out.extend_from_slice(&cached.1);
    });
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

thread_local! {
    /// The second last written by this thread and its `YYYY-MM-DDTHH:MM:SS.` text.
    static SECOND: RefCell<(Option<i64>, Vec<u8>)> = const { RefCell::new((None, Vec::new())) };
}

/// `YYYY-MM-DDTHH:MM:SS.` of `secs` since the epoch.
fn write_second(out: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = if year > 9999 {
        write!(out, "+{year}")
    } else if year < 0 {
        write!(out, "{year:05}")
    } else {
        write!(out, "{year:04}")
    };
    let _ = write!(
        out,
        "-{:02}-{:02}T{:02}:{:02}:{:02}.",
        month,
        day,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    );
}

/// A status code in decimal without going through `fmt`.
fn write_status(out: &mut Vec<u8>, status: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = status;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// What tracing-subscriber writes for the event, configured as `telemetry::init` does.
    fn tracing_json(line: &AccessLine<'_>) -> String {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_target(true)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || through_tracing(line));
        let bytes = lock(&capture.0).clone();
        String::from_utf8(bytes).unwrap()
    }

    fn ours(line: &AccessLine<'_>) -> String {
        let mut out = Vec::new();
        write_json(&mut out, line, SystemTime::now());
        String::from_utf8(out).unwrap()
    }

    /// The line without its timestamp value (the two are taken at different instants).
    fn without_timestamp(line: &str) -> String {
        let start = line.find("\"timestamp\":\"").unwrap() + 13;
        let end = start + line[start..].find('"').unwrap();
        format!("{}{}", &line[..start], &line[end..])
    }

    fn timestamp_of(line: &str) -> String {
        let start = line.find("\"timestamp\":\"").unwrap() + 13;
        let end = start + line[start..].find('"').unwrap();
        line[start..end].to_string()
    }

    const FULL: AccessLine<'static> = AccessLine {
        request_id: "0a1b2c3d4e5f6a7b",
        method: "GET",
        route: "tables",
        status: 200,
        latency_ms: 1.234_567,
        upstream_ms: Some(0.5),
        principal: Some("alice"),
        token: Some("9f86d081884c7d65"),
        reason: "allowed",
    };

    #[test]
    fn the_json_line_is_byte_for_byte_what_tracing_subscriber_writes() {
        let cases = [
            FULL,
            AccessLine {
                upstream_ms: None,
                principal: None,
                token: None,
                status: 401,
                latency_ms: 3.0,
                reason: "invalid_token",
                route: "-",
                ..FULL
            },
            AccessLine {
                principal: Some("quote\" back\\slash \n tab\t \u{1} é 漢"),
                route: "route \"x\"",
                method: "PROPFIND",
                latency_ms: 0.000_001_25,
                upstream_ms: Some(12_345.678_9),
                ..FULL
            },
            AccessLine {
                request_id: "",
                latency_ms: f64::NAN,
                upstream_ms: Some(f64::INFINITY),
                status: 0,
                ..FULL
            },
        ];
        for line in &cases {
            let theirs = tracing_json(line);
            let mine = ours(line);
            assert_eq!(without_timestamp(&mine), without_timestamp(&theirs));
            let (a, b) = (timestamp_of(&mine), timestamp_of(&theirs));
            assert_eq!(a.len(), b.len(), "{a} vs {b}");
            assert_eq!(a[..16], b[..16], "same minute: {a} vs {b}");
        }
    }

    #[test]
    fn timestamps_match_tracing_subscribers_calendar() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            write_timestamp(
                &mut out,
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_796_083_199, 999_999), "2026-11-30T23:59:59.999999Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        let mut out = Vec::new();
        write_timestamp(&mut out, UNIX_EPOCH - Duration::from_micros(1));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1969-12-31T23:59:59.999999Z"
        );
        // The remembered second is replaced when the second changes, in either direction.
        assert_eq!(at(1_796_083_199, 5), "2026-11-30T23:59:59.000005Z");
        assert_eq!(at(1_796_083_200, 0), "2026-12-01T00:00:00.000000Z");
        assert_eq!(at(1_796_083_199, 10), "2026-11-30T23:59:59.000010Z");
    }

    #[test]
    fn status_codes_are_written_in_decimal() {
        for status in [0u16, 7, 42, 101, 200, 404, 599, 999, 1000, 65_535] {
            let mut out = Vec::new();
            write_status(&mut out, status);
            assert_eq!(String::from_utf8(out).unwrap(), status.to_string());
        }
    }
}
