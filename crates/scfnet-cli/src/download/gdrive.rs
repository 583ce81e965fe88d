//! Google Drive's download flow, best effort: `uc?export=download&id=ID` either sends the file or
//! (for files too large to scan for viruses) an HTML page whose form carries a confirm token;
//! the form's target is the direct URL. Quota and permission pages give an error that says to
//! download by hand and use `--from`.

use anyhow::{bail, Context, Result};

/// Google Drive's address.
pub const DEFAULT_BASE: &str = "https://drive.google.com";

/// The URL that sends the bytes of Drive file `id`.
pub fn direct_url(agent: &ureq::Agent, base: &str, id: &str) -> Result<String> {
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{id:?} is not a Google Drive file id");
    }
    let first = format!("{}/uc?export=download&id={id}", base.trim_end_matches('/'));
    let mut resp = agent
        .get(&first)
        .call()
        .with_context(|| format!("requesting {first}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        bail!("HTTP {status} from {first}");
    }
    let html = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return Ok(first);
    }
    let page = resp
        .body_mut()
        .with_config()
        .limit(4 << 20)
        .read_to_string()
        .context("reading Google Drive's page")?;
    confirm_url(&page, base).with_context(|| {
        format!("Google Drive gave a page without a download form for {id} (quota exceeded or not shared?); download it by hand and use --from")
    })
}

/// The download URL in Drive's confirmation page: the form's action with its hidden fields, or
/// an old-style `confirm=` link.
pub fn confirm_url(page: &str, base: &str) -> Result<String> {
    if let Some(form_at) = page.find("<form") {
        let form = &page[form_at
            ..page[form_at..]
                .find("</form>")
                .map_or(page.len(), |e| form_at + e)];
        let action = attr(form, "action").context("a form without an action")?;
        let mut fields = Vec::new();
        let mut rest = form;
        while let Some(i) = rest.find("<input") {
            let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
            let tag = &rest[i..tag_end];
            if attr(tag, "type").as_deref() == Some("hidden") {
                if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
                    fields.push(format!("{n}={v}"));
                }
            }
            rest = &rest[tag_end..];
        }
        let sep = if action.contains('?') { '&' } else { '?' };
        let action = if action.starts_with('/') {
            format!("{}{action}", base.trim_end_matches('/'))
        } else {
            action
        };
        return Ok(format!("{action}{sep}{}", fields.join("&")));
    }
    if let Some(i) = page.find("confirm=") {
        let start = page[..i]
            .rfind('"')
            .context("a confirm link without quotes")?
            + 1;
        let end = i + page[i..]
            .find('"')
            .context("a confirm link without quotes")?;
        let link = page[start..end].replace("&amp;", "&");
        return Ok(if link.starts_with('/') {
            format!("{}{link}", base.trim_end_matches('/'))
        } else {
            link
        });
    }
    bail!("no confirm token")
}

/// The value of `name="…"` in an HTML tag, with `&amp;` decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')? + i;
    Some(tag[i..j].replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirm_form_becomes_a_url() {
        let page = r#"<html><body><form id="download-form" action="https://drive.usercontent.google.com/download" method="get">
<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="ABC">
<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="1234-5"></form></body></html>"#;
        assert_eq!(
            confirm_url(page, DEFAULT_BASE).unwrap(),
            "https://drive.usercontent.google.com/download?id=ABC&export=download&confirm=t&uuid=1234-5"
        );
    }

    #[test]
    fn an_old_confirm_link_is_followed() {
        let page = r#"<a id="uc-download-link" href="/uc?export=download&amp;confirm=Xy_1&amp;id=ABC">Download anyway</a>"#;
        assert_eq!(
            confirm_url(page, "https://drive.google.com").unwrap(),
            "https://drive.google.com/uc?export=download&confirm=Xy_1&id=ABC"
        );
    }

    #[test]
    fn a_quota_page_is_an_error() {
        assert!(confirm_url("<html>Quota exceeded</html>", DEFAULT_BASE).is_err());
    }
}
