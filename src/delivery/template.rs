//! The executor URL: one configured template, with the run's project id substituted per delivery.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Url;

use super::DeliveryError;

const PLACEHOLDER: &str = "{project_id}";

/// Everything but RFC 3986's unreserved characters is encoded, so a project id stays one path
/// segment or one query value whatever it holds (`/`, `?`, `#`, `&`, spaces).
const PROJECT_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A checked executor URL template.
#[derive(Clone)]
pub enum UrlTemplate {
    /// No placeholder: every run goes to the same URL, parsed once.
    Fixed(Url),
    /// `{project_id}` appears, so the URL is parsed per delivery.
    PerProject(String),
}

impl UrlTemplate {
    /// Checks the whole template now, with a stand-in project id, so a typo fails at start-up rather
    /// than at the first delivery.
    pub fn parse(template: &str) -> Result<Self, DeliveryError> {
        // A brace left after removing the placeholder is a misspelt one (`{projectId}`), which would
        // otherwise be sent literally, percent-encoded.
        if template.replace(PLACEHOLDER, "").contains(['{', '}']) {
            return Err(DeliveryError::UnknownPlaceholder);
        }
        let checked = absolute(&template.replace(PLACEHOLDER, "project"))?;
        if template.contains(PLACEHOLDER) {
            Ok(Self::PerProject(template.to_owned()))
        } else {
            Ok(Self::Fixed(checked))
        }
    }

    /// The URL for one project's runs.
    pub fn url_for(&self, project_id: &str) -> Result<Url, DeliveryError> {
        match self {
            Self::Fixed(url) => Ok(url.clone()),
            Self::PerProject(template) => {
                // URL parsing removes `.` and `..` path segments, encoded or not, so such an id
                // would send the run to another path rather than name its project.
                if project_id == "." || project_id == ".." {
                    return Err(DeliveryError::DotSegmentProjectId);
                }
                let encoded = utf8_percent_encode(project_id, PROJECT_ID).to_string();
                absolute(&template.replace(PLACEHOLDER, &encoded))
            }
        }
    }
}

fn absolute(url: &str) -> Result<Url, DeliveryError> {
    // The parse error names what is wrong without quoting the URL, which may carry credentials.
    let url = Url::parse(url).map_err(|error| DeliveryError::InvalidUrl(error.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(DeliveryError::UnsupportedScheme(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(template: &str, project_id: &str) -> Result<String, DeliveryError> {
        Ok(UrlTemplate::parse(template)?
            .url_for(project_id)?
            .to_string())
    }

    #[test]
    fn it_should_substitute_the_project_id_percent_encoded_wherever_it_appears() {
        assert_eq!(
            url(
                "https://exec.example/projects/{project_id}/runs?project={project_id}",
                "acme/web app?#&=x"
            )
            .unwrap(),
            "https://exec.example/projects/acme%2Fweb%20app%3F%23%26%3Dx/runs\
             ?project=acme%2Fweb%20app%3F%23%26%3Dx"
        );
        assert_eq!(
            url("http://{project_id}.exec.example:8080/", "acme-1").unwrap(),
            "http://acme-1.exec.example:8080/"
        );
        assert_eq!(
            url("https://exec.example/runs/{project_id}", "proj_1.v2~é").unwrap(),
            "https://exec.example/runs/proj_1.v2~%C3%A9"
        );
    }

    #[test]
    fn it_should_send_every_project_to_a_template_without_a_placeholder() {
        assert_eq!(
            url("https://exec.example/runs", "..").unwrap(),
            "https://exec.example/runs"
        );
    }

    #[test]
    fn it_should_not_let_a_project_id_climb_out_of_its_path() {
        for id in [".", ".."] {
            assert!(matches!(
                url("https://exec.example/projects/{project_id}/runs", id),
                Err(DeliveryError::DotSegmentProjectId)
            ));
        }
    }

    #[test]
    fn it_should_refuse_a_project_id_that_cannot_name_a_host() {
        assert!(matches!(
            url("https://{project_id}.exec.example/", "a b"),
            Err(DeliveryError::InvalidUrl(_))
        ));
    }

    #[test]
    fn it_should_refuse_templates_that_are_not_absolute_http_urls() {
        for template in ["", "/runs", "exec.example/runs", "https://"] {
            assert!(
                matches!(
                    UrlTemplate::parse(template),
                    Err(DeliveryError::InvalidUrl(_))
                ),
                "{template}"
            );
        }
        assert!(matches!(
            UrlTemplate::parse("ftp://exec.example/{project_id}"),
            Err(DeliveryError::UnsupportedScheme(scheme)) if scheme == "ftp"
        ));
        for template in [
            "https://exec.example/{projectId}",
            "https://exec.example/{project_id}}",
            "https://exec.example/{project_id",
        ] {
            assert!(
                matches!(
                    UrlTemplate::parse(template),
                    Err(DeliveryError::UnknownPlaceholder)
                ),
                "{template}"
            );
        }
    }
}
