//! The functions templates may call: Go's (`printf`, `eq`, `index`, …) and
//! Prometheus's (`humanize`, `humanizeDuration`, `reReplaceAll`, …), with
//! Go's formatting of numbers.

use std::fmt::Write as _;

use super::{Data, Result, TemplateError, Val, err, print, truth};
use crate::gofmt;

fn number(v: &Val) -> Result<f64> {
    match v {
        Val::Num(n) => Ok(*n),
        Val::Str(s) => {
            s.trim().parse().map_err(|_| TemplateError(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")))
        }
        Val::Bool(_) | Val::Map(_) | Val::Data | Val::Nil => err("can't convert the value to a number"),
    }
}

fn text(v: &Val) -> String {
    let mut s = String::new();
    print(v, &mut s);
    s
}

fn arity(name: &str, args: &[Val], n: usize) -> Result<()> {
    if args.len() != n {
        return err(format!("wrong number of args for {name}: want {n} got {}", args.len()));
    }
    Ok(())
}

pub(super) fn call(name: &str, args: Vec<Val>, data: &Data) -> Result<Val> {
    let one = |args: &[Val]| -> Result<f64> {
        arity(name, args, 1)?;
        number(&args[0])
    };
    let v = match name {
        "humanize" => Val::Str(humanize(one(&args)?, 1000.0, &["k", "M", "G", "T", "P", "E", "Z", "Y"], true)),
        "humanize1024" => {
            Val::Str(humanize(one(&args)?, 1024.0, &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"], false))
        }
        "humanizeDuration" => Val::Str(humanize_duration(one(&args)?)),
        "humanizePercentage" => Val::Str(format!("{}%", gofmt::format_g(one(&args)? * 100.0, Some(4)))),
        "humanizeTimestamp" => {
            let v = one(&args)?;
            Val::Str(if v.is_finite() {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(v.max(0.0));
                humantime::format_rfc3339_nanos(t).to_string().replace('T', " ").replace('Z', " +0000 UTC")
            } else {
                gofmt::format_g(v, Some(4))
            })
        }
        "toUpper" | "toLower" | "title" | "stripPort" | "stripDomain" | "safeHtml" => {
            arity(name, &args, 1)?;
            let s = text(&args[0]);
            Val::Str(match name {
                "toUpper" => s.to_uppercase(),
                "toLower" => s.to_lowercase(),
                "title" => title(&s),
                "stripPort" => strip_port(&s),
                "stripDomain" => strip_domain(&s),
                _ => s,
            })
        }
        "reReplaceAll" => {
            arity(name, &args, 3)?;
            let re = regex::Regex::new(&text(&args[0])).map_err(|e| TemplateError(e.to_string()))?;
            // Go's `$1` and `${name}` mean the same to the regex crate.
            Val::Str(re.replace_all(&text(&args[2]), text(&args[1]).as_str()).into_owned())
        }
        "match" => {
            arity(name, &args, 2)?;
            let re = regex::Regex::new(&text(&args[0])).map_err(|e| TemplateError(e.to_string()))?;
            Val::Bool(re.is_match(&text(&args[1])))
        }
        "printf" => {
            let Some((format, rest)) = args.split_first() else {
                return err("wrong number of args for printf: want at least 1 got 0");
            };
            Val::Str(printf(&text(format), rest))
        }
        "print" => Val::Str(args.iter().map(text).collect::<Vec<_>>().join("")),
        "println" => Val::Str(args.iter().map(text).collect::<Vec<_>>().join(" ") + "\n"),
        "len" => {
            arity(name, &args, 1)?;
            match &args[0] {
                Val::Str(s) => Val::Num(s.len() as f64),
                Val::Map(m) => Val::Num(m.len() as f64),
                _ => return err("len of a value that has no length"),
            }
        }
        "index" => {
            arity(name, &args, 2)?;
            match &args[0] {
                Val::Map(m) => Val::Str(m.get(&text(&args[1])).cloned().unwrap_or_default()),
                _ => return err("can't index a value that is not a map"),
            }
        }
        "not" => {
            arity(name, &args, 1)?;
            Val::Bool(!truth(&args[0]))
        }
        "and" | "or" => {
            if args.is_empty() {
                return err(format!("wrong number of args for {name}: want at least 1 got 0"));
            }
            let pick = args.iter().position(|a| truth(a) == (name == "or")).unwrap_or(args.len() - 1);
            args[pick].clone()
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let ordering = match (&args[0], &args[1]) {
                (Val::Num(a), Val::Num(b)) => a.partial_cmp(b),
                (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
                (Val::Bool(a), Val::Bool(b)) if matches!(name, "eq" | "ne") => Some(a.cmp(b)),
                _ => return err(format!("incompatible types for comparison in {name}")),
            };
            use std::cmp::Ordering::*;
            Val::Bool(match (name, ordering) {
                ("eq", o) => o == Some(Equal),
                ("ne", o) => o != Some(Equal),
                ("lt", o) => o == Some(Less),
                ("le", o) => matches!(o, Some(Less | Equal)),
                ("gt", o) => o == Some(Greater),
                (_, o) => matches!(o, Some(Greater | Equal)),
            })
        }
        "externalURL" => Val::Str(data.external_url.to_owned()),
        "pathPrefix" => Val::Str(String::new()),
        other => return err(format!("function {other:?} is not supported by Sightline's alert templates")),
    };
    Ok(v)
}

/// Prometheus's `humanize` (SI prefixes, small values too) and
/// `humanize1024` (binary prefixes, none below 1).
fn humanize(mut v: f64, base: f64, big: &[&str], small: bool) -> String {
    if v == 0.0 || !v.is_finite() || (!small && v.abs() <= 1.0) {
        return gofmt::format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in big {
            if v.abs() < base {
                break;
            }
            prefix = p;
            v /= base;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", gofmt::format_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s`, or seconds with four
/// significant digits, or milli-, micro-… seconds.
fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return gofmt::format_g(v, Some(4));
    }
    if v == 0.0 {
        return "0s".into();
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let d = v as i64;
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", gofmt::format_g(v, Some(4)))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", gofmt::format_g(v, Some(4)))
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

fn strip_port(s: &str) -> String {
    if let Some((host, _)) = s.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return host.to_owned();
    }
    match s.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_owned(),
        _ => s.to_owned(),
    }
}

fn strip_domain(s: &str) -> String {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return s.to_owned();
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_owned();
    }
    let short = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{short}:{p}"),
        None => short.to_owned(),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %f %e %g %q %x
/// %t %%`, with flags `-+0 `, width and precision.
fn printf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek().filter(|f| "-+0 #".contains(**f)) {
            flags.push(f);
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse::<usize>().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let body = match (verb, arg) {
            ('v' | 's', Val::Num(n)) if verb == 'v' || precision.is_none() => gofmt::format_v(*n),
            ('v' | 's', v) => {
                let s = text(v);
                match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            ('d', Val::Num(n)) if n.fract() == 0.0 => format!("{}", *n as i64),
            ('f' | 'F', Val::Num(n)) => gofmt::format_f(*n, precision.unwrap_or(6)),
            ('e', Val::Num(n)) => gofmt::format_e(*n, Some(precision.unwrap_or(6))),
            ('g', Val::Num(n)) => gofmt::format_g(*n, precision),
            ('q', v) => serde_json::to_string(&text(v)).unwrap_or_default(),
            ('x', Val::Num(n)) if n.fract() == 0.0 => format!("{:x}", *n as i64),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', Val::Bool(b)) => b.to_string(),
            (verb, Val::Num(n)) => format!("%!{verb}(float64={})", gofmt::format_v(*n)),
            (verb, v) => format!("%!{verb}(string={})", text(v)),
        };
        let body = if matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g') && flags.contains('+') && !body.starts_with('-') {
            format!("+{body}")
        } else {
            body
        };
        let width = width.parse::<usize>().unwrap_or(0);
        let len = body.chars().count();
        if len >= width {
            out.push_str(&body);
        } else if flags.contains('-') {
            out.push_str(&body);
            out.push_str(&" ".repeat(width - len));
        } else if flags.contains('0') && verb != 's' {
            let (sign, digits) = body.split_at(if body.starts_with(['-', '+']) { 1 } else { 0 });
            let _ = write!(out, "{sign}{}{digits}", "0".repeat(width - len));
        } else {
            out.push_str(&" ".repeat(width - len));
            out.push_str(&body);
        }
    }
    let extra: Vec<String> = args.map(text).collect();
    if !extra.is_empty() {
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}
