//! [`parse_duration`]: the human durations settings and the command line take (`90s`, `30m`,
//! `1h30m`, `30d`): `TESSERA_MAX_SESSION_LIFETIME` and `tessera token issue --ttl`.

use std::time::Duration;

/// One or more `<number><unit>` with units `s`, `m`, `h`, `d` (`90s`, `30m`, `1h30m`); a bare
/// number is refused (seconds or minutes?), and so is zero. The error is a reason naming the
/// text, for the caller to prefix with the setting or argument.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let usage = "expected a duration such as 90s, 30m, 1h or 1h30m (units s, m, h, d)";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("is empty; {usage}"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|character: char| character.is_ascii_digit()).len();
        let (number, after) = rest.split_at(digits);
        let mut units = after.chars();
        let unit_seconds = match units.next() {
            _ if number.is_empty() => return Err(format!("`{text}` is not a duration: {usage}")),
            None => return Err(format!("`{text}` has no unit: {usage}")),
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 60 * 60,
            Some('d') => 24 * 60 * 60,
            Some(_) => return Err(format!("`{text}` is not a duration: {usage}")),
        };
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|count| count.checked_mul(unit_seconds))
            .and_then(|seconds| total.checked_add(seconds));
        total = part.ok_or_else(|| format!("`{text}` is too long a duration"))?;
        rest = units.as_str();
    }
    if total == 0 {
        return Err(format!("`{text}` is zero; expected at least 1s"));
    }
    Ok(Duration::from_secs(total))
}
