//! Kubernetes quantities (`1`, `"1"`, `"500m"`, `"1e3"`, `"4Gi"`) as whole counts.
//!
//! Extended resources such as `nvidia.com/gpu` must be whole, non-negative numbers. This parser
//! follows the apimachinery grammar exactly and answers with the exact value or why it is not a
//! whole count; it never panics and never rounds.

use std::fmt;

use serde_json::Value;

/// Why a quantity is not a whole non-negative count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantityError {
    /// Not a quantity at all (wrong type, bad syntax).
    Invalid(String),
    /// Below zero.
    Negative(String),
    /// Not a whole number (`0.5`, `500m`).
    Fractional(String),
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(s) => write!(f, "`{s}` is not a Kubernetes quantity"),
            Self::Negative(s) => write!(f, "`{s}` is negative"),
            Self::Fractional(s) => write!(f, "`{s}` is not a whole number"),
        }
    }
}

/// A whole count; values beyond `u64` saturate (they are over any limit anyway).
pub type Count = u64;

/// Parses a quantity as it appears in JSON: a number or a string.
pub fn whole_count(value: &Value) -> Result<Count, QuantityError> {
    match value {
        Value::String(s) => parse_whole(s),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if n.as_i64().is_some() {
                Err(QuantityError::Negative(n.to_string()))
            } else {
                // A float: reuse the string grammar on its canonical text (`0.5`, `1e3`).
                parse_whole(&n.to_string())
            }
        }
        other => Err(QuantityError::Invalid(other.to_string())),
    }
}

/// Parses the string form of a quantity into a whole count.
pub fn parse_whole(text: &str) -> Result<Count, QuantityError> {
    let invalid = || QuantityError::Invalid(text.to_string());
    let s = text.trim();
    if s.is_empty() || s.len() > 64 {
        return Err(invalid());
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(invalid());
    }
    let (exp10, exp2) = suffix_exponents(suffix).ok_or_else(invalid)?;
    // value = digits * 10^(exp10 - len(frac)) * 2^exp2
    let mut digits: String = format!("{int_part}{frac_part}");
    let mut exp10 = exp10 - frac_part.len() as i64;
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
        exp10 += 1;
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0); // zero, whatever its sign or suffix
    }
    if negative {
        return Err(QuantityError::Negative(text.to_string()));
    }
    let mantissa: u128 = match digits.parse() {
        Ok(m) => m,
        Err(_) => return Ok(Count::MAX), // more than 38 digits: huge
    };
    if exp10 >= 0 {
        let value = pow_checked(10, exp10 as u32)
            .and_then(|p| mantissa.checked_mul(p))
            .and_then(|v| pow_checked(2, exp2).and_then(|p| v.checked_mul(p)));
        return Ok(value.map_or(Count::MAX, saturate));
    }
    // A negative decimal exponent: whole only if 10^-exp10 divides mantissa * 2^exp2.
    let denominator = pow_checked(10, (-exp10) as u32).ok_or_else(|| QuantityError::Fractional(text.to_string()))?;
    match pow_checked(2, exp2).and_then(|p| mantissa.checked_mul(p)) {
        Some(numerator) if numerator % denominator == 0 => Ok(saturate(numerator / denominator)),
        Some(_) => Err(QuantityError::Fractional(text.to_string())),
        None => Err(invalid()),
    }
}

/// The decimal and binary exponents a suffix stands for (`Ki` = 2^10, `k` = 10^3, `e3` = 10^3).
fn suffix_exponents(suffix: &str) -> Option<(i64, u32)> {
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(b) = binary {
        return Some((0, b));
    }
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(d) = decimal {
        return Some((d, 0));
    }
    // <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>, integer exponent.
    let exp = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E'))?;
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    exp.parse::<i64>().ok().map(|e| (e, 0))
}

fn pow_checked(base: u128, exp: u32) -> Option<u128> {
    base.checked_pow(exp)
}

fn saturate(v: u128) -> Count {
    Count::try_from(v).unwrap_or(Count::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let ok: &[(Value, u64)] = &[
            (json!(1), 1),
            (json!("1"), 1),
            (json!("0"), 0),
            (json!("-0"), 0),
            (json!("+2"), 2),
            (json!("1e3"), 1000),
            (json!("1E3"), 1000),
            (json!("2000m"), 2),
            (json!("0.5Ki"), 512),
            (json!("4Gi"), 4 << 30),
            (json!("1k"), 1000),
            (json!(4.0), 4),
            (json!("10.000"), 10),
            (json!("1e100"), u64::MAX),
            (json!("99999999999999999999999999999999999999999"), u64::MAX),
        ];
        for (input, want) in ok {
            assert_eq!(whole_count(input), Ok(*want), "{input}");
        }
        let frac = [json!("0.5"), json!(0.5), json!("500m"), json!("1e-3"), json!("1.5")];
        for input in frac {
            assert!(
                matches!(whole_count(&input), Err(QuantityError::Fractional(_))),
                "{input}"
            );
        }
        let neg = [json!(-1), json!("-1"), json!("-0.5"), json!(-2.0)];
        for input in neg {
            assert!(
                matches!(whole_count(&input), Err(QuantityError::Negative(_))),
                "{input}"
            );
        }
        let invalid = [
            json!(""),
            json!("one"),
            json!("1 GPU"),
            json!("1.2.3"),
            json!("."),
            json!("1KiB"),
            json!("1e"),
            json!("1e99999"),
            json!(true),
            json!(null),
            json!([1]),
            json!({"a": 1}),
        ];
        for input in invalid {
            assert!(matches!(whole_count(&input), Err(QuantityError::Invalid(_))), "{input}");
        }
    }
}
