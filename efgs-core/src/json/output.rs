use super::*;

// ---------------------------------------------------------------------------------------------
// Output

/// Prints a batch exactly as the reference does (see the module documentation).
pub fn to_reference_json(batch: &DiagnosisKeyBatch) -> String {
    let mut out = String::with_capacity(2 + batch.keys.len() * 280);
    out.push('{');
    if !batch.keys.is_empty() {
        out.push_str("\"keys\": [");
        let mut memo = VisitedJson::default();
        for (i, key) in batch.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_key(&mut out, key, &mut memo);
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// The JSON text of the last shared visited-country list written: the keys of one batch share
/// their list (ADR 0033), so it is rendered once per batch, not once per key.
#[derive(Debug, Default)]
pub(crate) struct VisitedJson {
    list: Option<crate::model::CountryList>,
    text: String,
}

pub(crate) fn write_key(out: &mut String, key: &DiagnosisKey, memo: &mut VisitedJson) {
    out.push('{');
    let mut first = true;
    let mut field = |out: &mut String, name: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\": ");
    };
    if !key.key_data.is_empty() {
        field(out, "keyData");
        out.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(&key.key_data, out);
        out.push('"');
    }
    // `write!` into a String cannot fail.
    if key.rolling_start_interval_number != 0 {
        field(out, "rollingStartIntervalNumber");
        let _ = write!(out, "{}", key.rolling_start_interval_number);
    }
    if key.rolling_period != 0 {
        field(out, "rollingPeriod");
        let _ = write!(out, "{}", key.rolling_period);
    }
    if key.transmission_risk_level != 0 {
        field(out, "transmissionRiskLevel");
        let _ = write!(out, "{}", key.transmission_risk_level);
    }
    if !key.visited_countries.is_empty() {
        field(out, "visitedCountries");
        let list = &key.visited_countries;
        if !memo.list.as_ref().is_some_and(|l| l.same_shared(list)) {
            memo.text.clear();
            memo.text.push('[');
            for (i, c) in list.iter().enumerate() {
                if i > 0 {
                    memo.text.push(',');
                }
                write_country(&mut memo.text, c);
            }
            memo.text.push(']');
            memo.list = list.is_shared().then(|| list.clone());
        }
        out.push_str(&memo.text);
    }
    if !key.origin.is_empty() {
        field(out, "origin");
        write_country(out, &key.origin);
    }
    if key.report_type != 0 {
        field(out, "reportType");
        match ReportType::try_from(key.report_type) {
            Ok(rt) => {
                out.push('"');
                out.push_str(rt.proto_name());
                out.push('"');
            }
            Err(_) => {
                let _ = write!(out, "{}", key.report_type);
            }
        }
    }
    if key.days_since_onset_of_symptoms != 0 {
        field(out, "days_since_onset_of_symptoms");
        let _ = write!(out, "{}", key.days_since_onset_of_symptoms);
    }
    out.push('}');
}

/// A country as a quoted string: a valid code of printable ASCII without `"` and `\\` (the
/// usual case) is written as it is, anything else through [`write_string`].
fn write_country(out: &mut String, code: &CountryCode) {
    let bytes = code.as_bytes();
    if code.is_valid()
        && bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.extend(bytes.iter().map(|&b| char::from(b)));
        out.push('"');
    } else {
        write_string(out, &code.text());
    }
}

/// A quoted string, escaped like protobuf-java-format's `escapeText`.
pub(super) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) > 0xFFFF => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
