//! Strings with placeholders that are filled in per instance: `{port}`, `{instance}`,
//! `{workload}`, `{detector}` and `{host}`. `{{` and `}}` stand for literal braces.

use std::fmt;

/// Values substituted for the placeholders of one instance.
#[derive(Clone, Copy, Debug)]
pub struct Placeholders<'a> {
    /// Loopback port the deployer allocated for the instance.
    pub port: u16,
    pub instance: &'a str,
    pub workload: &'a str,
    /// gRPC address of the detector, `host:port`.
    pub detector: &'a str,
    /// Address at which the deployer and the detector reach the instance: `127.0.0.1` for a
    /// local process, the container's address on the project network for a container. Known
    /// once the instance runs, so only health checks may use it.
    pub host: &'a str,
}

/// Error in a template's syntax.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder {{{name}}}: expected {{port}}, {{instance}}, {{workload}}, {{detector}} or {{host}}"
    )]
    UnknownPlaceholder { name: String },
    #[error("unclosed '{{' at byte {position}: write '{{{{' for a literal brace")]
    Unclosed { position: usize },
    #[error("unmatched '}}' at byte {position}: write '}}}}' for a literal brace")]
    Unmatched { position: usize },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Port,
    Instance,
    Workload,
    Detector,
    Host,
}

/// A parsed template. Rendering cannot fail, because parsing already checked every
/// placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`.
    ///
    /// # Errors
    ///
    /// Returns a [`TemplateError`] for an unknown placeholder or an unpaired brace.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((position, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, next)| next == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, next)| next == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::Unmatched { position }),
                '{' => {
                    let rest = &source[position + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unclosed { position })?;
                    let name = &rest[..end];
                    let part = match name {
                        "port" => Part::Port,
                        "instance" => Part::Instance,
                        "workload" => Part::Workload,
                        "detector" => Part::Detector,
                        "host" => Part::Host,
                        _ => {
                            return Err(TemplateError::UnknownPlaceholder {
                                name: name.to_owned(),
                            });
                        }
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    // Skip the name and the closing brace.
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the template uses `{host}`.
    pub fn uses_host(&self) -> bool {
        self.parts.contains(&Part::Host)
    }

    /// True when the template is exactly `{port}`.
    pub fn is_port_only(&self) -> bool {
        self.parts == [Part::Port]
    }

    /// Fills in the placeholders.
    pub fn render(&self, values: &Placeholders<'_>) -> String {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Port => out.push_str(&values.port.to_string()),
                Part::Instance => out.push_str(values.instance),
                Part::Workload => out.push_str(values.workload),
                Part::Detector => out.push_str(values.detector),
                Part::Host => out.push_str(values.host),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: Placeholders<'static> = Placeholders {
        port: 4100,
        instance: "web-3",
        workload: "web",
        detector: "127.0.0.1:7401",
        host: "172.30.0.5",
    };

    fn render(source: &str) -> String {
        Template::parse(source)
            .expect("the template is valid")
            .render(&VALUES)
    }

    #[test]
    fn placeholders_are_substituted() {
        assert_eq!(
            render("http://127.0.0.1:{port}/{workload}/{instance}"),
            "http://127.0.0.1:4100/web/web-3"
        );
        assert_eq!(render("{detector}"), "127.0.0.1:7401");
        assert_eq!(render("http://{host}:{port}/"), "http://172.30.0.5:4100/");
    }

    #[test]
    fn host_use_is_recognised() {
        assert!(Template::parse("{host}:{port}").expect("valid").uses_host());
        assert!(!Template::parse("{{host}}").expect("valid").uses_host());
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(render("echo ${{HOME}} {port}"), "echo ${HOME} 4100");
    }

    #[test]
    fn text_without_placeholders_is_kept() {
        assert_eq!(render("--bind"), "--bind");
        assert_eq!(render(""), "");
    }

    #[test]
    fn unknown_placeholder_is_rejected() {
        let error = Template::parse("{address}").expect_err("{address} is not a placeholder");
        assert_eq!(
            error,
            TemplateError::UnknownPlaceholder {
                name: "address".to_owned()
            }
        );
    }

    #[test]
    fn unpaired_braces_are_rejected() {
        assert_eq!(
            Template::parse("a{port"),
            Err(TemplateError::Unclosed { position: 1 })
        );
        assert_eq!(
            Template::parse("a}b"),
            Err(TemplateError::Unmatched { position: 1 })
        );
    }

    #[test]
    fn port_only_template_is_recognised() {
        let port = Template::parse("{port}").expect("valid");
        let other = Template::parse("x{port}").expect("valid");
        assert!(port.is_port_only());
        assert!(!other.is_port_only());
    }
}
