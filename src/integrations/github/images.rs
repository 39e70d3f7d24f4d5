//! Images attached to what was written on GitHub. The text names them (Markdown `![…](…)`,
//! or the `<img>` tag GitHub's uploader writes); the bytes come from the signed links in
//! GitHub's own rendering of it, because attachments of private repositories are never served
//! to an API token, only to those links.

use std::rc::Rc;

use markup5ever_rcdom::{Node, NodeData};
use pulldown_cmark::{Event, Parser, Tag};

use crate::integrations::request::{ImageAttachment, MAX_ATTACHED_IMAGES};

/// GitHub's hosts of uploaded images: `github.com` for `/user-attachments/…` and
/// `/OWNER/REPO/assets/…`, its content hosts for the older and the signed links.
const CONTENT_HOST_SUFFIX: &str = ".githubusercontent.com";
const GITHUB_HOST: &str = "github.com";

/// The images attached to `markdown`, in order, at most [`MAX_ATTACHED_IMAGES`]. Links to other sites
/// are not attachments (the service reads nothing else a comment points at).
pub fn attached_images(markdown: &str) -> Vec<ImageAttachment> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut in_image: Option<(String, String)> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                in_image = Some((dest_url.to_string(), String::new()));
            }
            Event::Text(text) | Event::Code(text) => {
                if let Some((_, alt)) = in_image.as_mut() {
                    alt.push_str(&text);
                }
            }
            Event::End(pulldown_cmark::TagEnd::Image) => found.extend(in_image.take()),
            Event::Html(html) | Event::InlineHtml(html) => {
                found.extend(image_tags(&html));
            }
            _ => {}
        }
    }
    found
        .into_iter()
        .filter(|(url, _)| url::Url::parse(url).is_ok_and(|url| is_attachment(&url)))
        .take(MAX_ATTACHED_IMAGES)
        .map(|(url, alt)| ImageAttachment {
            name: name_of(&url, &alt),
            url,
            // GitHub does not say; the bytes do, when they are read.
            mime_type: String::new(),
        })
        .collect()
}

/// The `src` of each `<img>` in `html` that GitHub serves (`api_origin` counts as GitHub: the
/// instance of GitHub Enterprise), in order.
pub fn rendered_image_links(html: &str, api_origin: &url::Origin) -> Vec<String> {
    image_tags(html)
        .into_iter()
        .map(|(src, _)| src)
        .filter(|src| url::Url::parse(src).is_ok_and(|url| may_read(&url, api_origin)))
        .collect()
}

/// Whether `url` is an upload to GitHub (not a picture elsewhere that a comment shows).
fn is_attachment(url: &url::Url) -> bool {
    if url.scheme() != "https" {
        return false;
    }
    match url.host_str() {
        Some(GITHUB_HOST) => {
            let path = url.path();
            path.starts_with("/user-attachments/assets/") || path.contains("/assets/")
        }
        Some(host) => host.ends_with(CONTENT_HOST_SUFFIX),
        None => false,
    }
}

/// Whether images are read from `url`, or a redirect is followed to it: GitHub's upload hosts
/// over https, or the origin of GITHUB_API_URL (GitHub Enterprise, or a local test double).
pub fn may_read(url: &url::Url, api_origin: &url::Origin) -> bool {
    is_attachment(url) || url.origin() == *api_origin
}

/// `(src, alt)` of the `<img>` elements of an HTML fragment.
fn image_tags(html: &str) -> Vec<(String, String)> {
    let tree = htmd::HtmlToMarkdown::new().html_to_tree(html);
    let mut found = Vec::new();
    if let Ok(tree) = tree {
        collect_images(&tree, &mut found);
    }
    found
}

fn collect_images(node: &Rc<Node>, found: &mut Vec<(String, String)>) {
    if let NodeData::Element { name, attrs, .. } = &node.data
        && name.local.as_ref() == "img"
    {
        let attrs = attrs.borrow();
        let value = |wanted: &str| {
            attrs
                .iter()
                .find(|a| a.name.local.as_ref() == wanted)
                .map(|a| a.value.to_string())
        };
        if let Some(src) = value("src") {
            found.push((src, value("alt").unwrap_or_default()));
        }
    }
    for child in node.children.borrow().iter() {
        collect_images(child, found);
    }
}

/// What an image is called in notes: its alt text unless that is GitHub's default `image`,
/// else the last part of its address.
fn name_of(url: &str, alt: &str) -> String {
    let alt = alt.trim();
    if !alt.is_empty() && alt != "image" {
        return alt.chars().take(100).collect();
    }
    url.split(['?', '#'])
        .next()
        .and_then(|path| path.rsplit('/').find(|part| !part.is_empty()))
        .unwrap_or("image")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_found_in_markdown_and_in_the_uploaders_img_tags() {
        // As GitHub's editor writes an upload today, and as it wrote them before.
        let body = "@openhands the button is cut off:\n\n\
            <img width=\"1031\" height=\"400\" alt=\"image\" src=\"https://github.com/user-attachments/assets/0a1b2c3d-4e5f-6789-abcd-ef0123456789\" />\n\n\
            and before: ![before.png](https://user-images.githubusercontent.com/583231/99999999-aaaa.png)\n\
            not these: ![logo](https://example.com/logo.png) ![x](http://github.com/user-attachments/assets/x)\n\
            `![code](https://github.com/user-attachments/assets/in-code)`";
        let images = attached_images(body);
        let found: Vec<(&str, &str)> = images
            .iter()
            .map(|i| (i.url.as_str(), i.name.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "https://github.com/user-attachments/assets/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
                    "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
                ),
                (
                    "https://user-images.githubusercontent.com/583231/99999999-aaaa.png",
                    "before.png"
                ),
            ]
        );
    }

    #[test]
    fn at_most_ten_images_are_kept() {
        let body: String = (0..15)
            .map(|i| format!("![s{i}](https://github.com/user-attachments/assets/{i})\n"))
            .collect();
        assert_eq!(attached_images(&body).len(), MAX_ATTACHED_IMAGES);
    }

    #[test]
    fn the_rendering_gives_signed_links_on_githubs_hosts_only() {
        // The shape of `body_html` for a private repository's upload.
        let html = "<p>look</p>\n<p><a target=\"_blank\" rel=\"noopener noreferrer\" \
            href=\"https://private-user-images.githubusercontent.com/1/2-uuid.png?jwt=a.b.c&amp;x=1\">\
            <img width=\"1031\" alt=\"image\" src=\"https://private-user-images.githubusercontent.com/1/2-uuid.png?jwt=a.b.c&amp;x=1\" \
            style=\"max-width: 100%;\"></a> <img src=\"https://camo.example.net/x.png\"> \
            <img src=\"http://127.0.0.1:9/img.png\"></p>";
        let origin = url::Url::parse("https://api.github.com").unwrap().origin();
        assert_eq!(
            rendered_image_links(html, &origin),
            vec!["https://private-user-images.githubusercontent.com/1/2-uuid.png?jwt=a.b.c&x=1"]
        );
        let local = url::Url::parse("http://127.0.0.1:9/github")
            .unwrap()
            .origin();
        assert_eq!(rendered_image_links(html, &local).len(), 2);
    }
}
