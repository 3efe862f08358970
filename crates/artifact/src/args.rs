//! The value parsers of the command-line options that `train` and `infer`
//! share, so that every number is range-checked when it is parsed and the
//! error names the option (clap prefixes the message with it):
//! `--lr nan` or `--batch-size 0` never reach a training loop.
//!
//! Use: `#[arg(long, value_parser = args::positive_f64)]`.

/// A whole number ≥ 1 (sizes, counts, epochs).
pub fn positive_usize(s: &str) -> Result<usize, String> {
    let value: usize = s
        .parse()
        .map_err(|_| format!("expected a whole number ≥ 1, got {s:?}"))?;
    if value == 0 {
        return Err("must be at least 1".into());
    }
    Ok(value)
}

/// A finite number > 0 (learning rates, temperatures).
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let value = number(s)?;
    if value <= 0.0 {
        return Err(format!("must be greater than 0, got {value}"));
    }
    Ok(value)
}

/// A finite number ≥ 0 (weight decay, clipping norms, time budgets; 0 = off).
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    let value = number(s)?;
    if value < 0.0 {
        return Err(format!("must be at least 0, got {value}"));
    }
    Ok(value)
}

/// A probability of dropping, in [0, 1).
pub fn dropout(s: &str) -> Result<f64, String> {
    let value = number(s)?;
    if !(0.0..1.0).contains(&value) {
        return Err(format!("must be in [0, 1), got {value}"));
    }
    Ok(value)
}

/// A weight or fraction in [0, 1].
pub fn unit_interval(s: &str) -> Result<f64, String> {
    let value = number(s)?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("must be in [0, 1], got {value}"));
    }
    Ok(value)
}

/// A fraction strictly between 0 and 1.
pub fn open_unit_interval(s: &str) -> Result<f64, String> {
    let value = number(s)?;
    if !(value > 0.0 && value < 1.0) {
        return Err(format!("must be between 0 and 1 (exclusive), got {value}"));
    }
    Ok(value)
}

fn number(s: &str) -> Result<f64, String> {
    let value: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number, got {s:?}"))?;
    if !value.is_finite() {
        return Err(format!("must be a finite number, got {s}"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parser_refuses_what_is_out_of_its_range() {
        assert_eq!(positive_usize("3"), Ok(3));
        assert!(positive_usize("0").is_err());
        assert!(positive_usize("-1").is_err());
        assert!(positive_usize("18446744073709551616").is_err());
        assert_eq!(positive_f64("2e-3"), Ok(2e-3));
        for bad in ["0", "-1", "nan", "inf", "x"] {
            assert!(positive_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative_f64("0"), Ok(0.0));
        assert!(non_negative_f64("-0.1").is_err());
        assert!(non_negative_f64("inf").is_err());
        assert_eq!(dropout("0"), Ok(0.0));
        assert!(dropout("1").is_err());
        assert_eq!(unit_interval("1"), Ok(1.0));
        assert!(unit_interval("1.5").is_err());
        assert!(open_unit_interval("0").is_err());
        assert_eq!(open_unit_interval("0.1"), Ok(0.1));
    }
}
