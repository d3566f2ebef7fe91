//! Numbers printed as Go prints them (`fmt`'s `%v`, `%g`, `%e`, `%f` and
//! `strconv.FormatFloat`), so that expanded templates and the rules API read
//! exactly as Prometheus's.

/// The decimal digits and exponent of `v` (finite, not zero): `digits` is
/// `d.ddd…` without the point, `v = 0.d… × 10^(exp+1)`.
fn decompose(v: f64, precision: Option<usize>) -> (String, i32) {
    let s = match precision {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    (mantissa.replace('.', ""), exp.parse().unwrap_or(0))
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf".into() } else { "-Inf".into() })
    } else {
        None
    }
}

fn exponent(out: &mut String, exp: i32) {
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
}

/// `%e` with `precision` digits after the point, or the fewest that read
/// back (`None`, as `strconv.FormatFloat(v, 'e', -1, 64)`).
pub fn format_e(v: f64, precision: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        let zeros = "0".repeat(precision.unwrap_or(0));
        let point = if zeros.is_empty() { "" } else { "." };
        return format!("{sign}0{point}{zeros}e+00");
    }
    let (digits, exp) = decompose(v, precision.map(|p| p + 1));
    let mut out = format!("{sign}{}", &digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    exponent(&mut out, exp);
    out
}

/// `%g` with `precision` significant digits, or the fewest that read back
/// (`None`: Go's `%v` of a float64).
pub fn format_g(v: f64, precision: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0");
    }
    let precision = precision.map(|p| p.max(1));
    let (mut digits, exp) = decompose(v, precision);
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    // Go: the exponent form when exp < -4 or exp >= the precision (6 for
    // the shortest form).
    let limit = precision.map_or(6, |p| p as i32);
    let mut out = String::from(sign);
    if exp < -4 || exp >= limit {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        exponent(&mut out, exp);
    } else if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// `%v` of a float64 in Go's `fmt` (shortest digits, exponent form from
/// 1e6 and below 1e-4).
pub fn format_v(v: f64) -> String {
    format_g(v, None)
}

/// `%.{p}f`.
pub fn format_f(v: f64, precision: usize) -> String {
    special(v).unwrap_or_else(|| format!("{v:.precision$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_go_prints_them() {
        // Expected values are what Go 1.22's fmt prints.
        let v = [
            (1.0, "1"),
            (0.5, "0.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
        ];
        for (x, want) in v {
            assert_eq!(format_v(x), want);
        }
        assert_eq!(format_v(1e6), "1e+06");
        assert_eq!(format_g(1234567.0, Some(4)), "1.235e+06");
        assert_eq!(format_g(0.5, Some(4)), "0.5");
        assert_eq!(format_g(1000.0, Some(4)), "1000");
        assert_eq!(format_g(12345.0, Some(4)), "1.234e+04");
        assert_eq!(format_g(0.0, Some(4)), "0");
        assert_eq!(format_e(1.0, None), "1e+00");
        assert_eq!(format_e(0.25, None), "2.5e-01");
        assert_eq!(format_e(1234.5, Some(2)), "1.23e+03");
        assert_eq!(format_e(0.0, None), "0e+00");
        assert_eq!(format_g(f64::NAN, None), "NaN");
        assert_eq!(format_g(f64::INFINITY, None), "+Inf");
        assert_eq!(format_f(2.0 / 3.0, 2), "0.67");
    }
}
