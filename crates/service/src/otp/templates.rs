//! Message texts of one-time passwords: built-in templates per locale, and tenants' own
//! (minijinja, sandboxed: no file access, bounded work, unknown variables are errors).
//!
//! Variables: `code`, `brand` (also `company_name`), `minutes` (validity, rounded up),
//! `length`. The built-in texts follow WhatsApp's guidance for authentication messages: the
//! code first, then who it is for and when it expires, no links.

use std::sync::{LazyLock, RwLock};

use minijinja::{Environment, UndefinedBehavior, context};

/// The template of the pushed message.
pub const PUSH: &str = "default";
/// The text a user sends back in inbound mode (prefilled in the `wa.me` link).
pub const INBOUND: &str = "inbound";

const MAX_BODY_CHARS: usize = 1_024;

/// (locale, push text, inbound text)
const BUILT_IN: [(&str, &str, &str); 2] = [
    (
        "en",
        "*{{ code }}* is your verification code{% if brand %} for {{ brand }}{% endif %}. Do not share it. \
         It expires in {{ minutes }} minute{% if minutes != 1 %}s{% endif %}.",
        "{{ code }} is my verification code{% if brand %} for {{ brand }}{% endif %}.",
    ),
    (
        "id",
        "*{{ code }}* adalah kode verifikasi Anda{% if brand %} untuk {{ brand }}{% endif %}. \
         Jangan berikan kode ini kepada siapa pun. Berlaku {{ minutes }} menit.",
        "{{ code }} adalah kode verifikasi saya{% if brand %} untuk {{ brand }}{% endif %}.",
    ),
];

pub const BUILT_IN_LOCALES: [&str; 2] = ["en", "id"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("the template is not valid: {0}")]
    Syntax(String),
    #[error("the template must show the code (`{{{{ code }}}}`)")]
    NoCode,
    #[error("one-time-password messages must not contain links")]
    Link,
    #[error("the template is longer than {MAX_BODY_CHARS} characters")]
    TooLong,
}

pub struct Vars<'a> {
    pub code: &'a str,
    pub brand: Option<&'a str>,
    pub minutes: i64,
}

/// The built-in text of `name` (push or inbound) for `locale`: the exact locale, else its
/// language, else English.
pub fn built_in(name: &str, locale: &str) -> Option<&'static str> {
    let pick = |(_, push, inbound): &(&str, &'static str, &'static str)| match name {
        PUSH => Some(*push),
        INBOUND => Some(*inbound),
        _ => None,
    };
    let language = language(locale);
    BUILT_IN
        .iter()
        .find(|(l, ..)| *l == locale)
        .or_else(|| BUILT_IN.iter().find(|(l, ..)| *l == language))
        .or_else(|| BUILT_IN.first())
        .and_then(pick)
}

/// `pt-BR` → `pt`.
pub fn language(locale: &str) -> &str {
    locale.split(['-', '_']).next().unwrap_or(locale)
}

/// A locale tag as accepted: `en`, `id`, `pt-BR`, `zh_Hant`.
pub fn valid_locale(locale: &str) -> bool {
    let mut parts = locale.split(['-', '_']);
    let language = parts.next().unwrap_or("");
    let region_ok = parts.all(|p| (2..=4).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_lowercase())
        && region_ok
        && locale.len() <= 16
}

/// A template name as accepted: 1 to 64 of `a-z`, `0-9`, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Compiled templates kept at most; all are dropped when there are more.
const MAX_COMPILED: usize = 1_024;

/// One environment for every render. It keeps each template it compiled under its source as
/// the name, so a text used again is not parsed again.
static ENVIRONMENT: LazyLock<RwLock<Environment<'static>>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(20_000));
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    RwLock::new(env)
});

pub fn render(body: &str, vars: &Vars<'_>) -> Result<String, TemplateError> {
    let brand = vars.brand.unwrap_or("");
    let context = context! { code => vars.code, brand => brand, company_name => brand, minutes => vars.minutes, length => vars.code.len() };
    let compiled = {
        let env = ENVIRONMENT.read().unwrap_or_else(|p| p.into_inner());
        env.get_template(body).ok().map(|template| template.render(&context))
    };
    let rendered = match compiled {
        Some(Ok(text)) => text,
        _ => {
            let mut env = ENVIRONMENT.write().unwrap_or_else(|p| p.into_inner());
            if env.templates().count() >= MAX_COMPILED {
                env.clear_templates();
            }
            // A text with a syntax error is not kept.
            let _ = env.add_template_owned(body.to_owned(), body.to_owned());
            // Errors come from the source rendered as such: they name no template.
            env.render_str(body, &context).map_err(|err| TemplateError::Syntax(err.to_string()))?
        }
    };
    Ok(rendered.trim().to_owned())
}

/// A tenant's template is accepted when it renders, shows the code and has no link.
pub fn validate(body: &str) -> Result<(), TemplateError> {
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(TemplateError::TooLong);
    }
    let sample = "482913";
    let text = render(body, &Vars { code: sample, brand: Some("Acme"), minutes: 5 })?;
    if !text.contains(sample) {
        return Err(TemplateError::NoCode);
    }
    if has_link(&text) {
        return Err(TemplateError::Link);
    }
    Ok(())
}

fn has_link(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("://") || lower.contains("www.") || lower.contains("wa.me/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_texts_put_the_code_first() {
        let vars = Vars { code: "482913", brand: Some("Acme"), minutes: 5 };
        assert_eq!(
            render(built_in(PUSH, "en").unwrap(), &vars).unwrap(),
            "*482913* is your verification code for Acme. Do not share it. It expires in 5 minutes."
        );
        let id = render(built_in(PUSH, "id-ID").unwrap(), &vars).unwrap();
        assert!(id.starts_with("*482913* adalah kode verifikasi Anda untuk Acme."), "{id}");
        let one = render(built_in(PUSH, "fr").unwrap(), &Vars { brand: None, minutes: 1, ..vars }).unwrap();
        assert_eq!(one, "*482913* is your verification code. Do not share it. It expires in 1 minute.");
    }

    #[test]
    fn tenant_templates_are_checked() {
        assert_eq!(validate("{{ code }} — {{ company_name }}"), Ok(()));
        assert_eq!(validate("Your code for {{ brand }}"), Err(TemplateError::NoCode));
        assert_eq!(validate("{{ code }} https://evil.example"), Err(TemplateError::Link));
        assert!(matches!(validate("{{ code }} {{ nope }}"), Err(TemplateError::Syntax(_))));
        assert!(matches!(validate("{{ code "), Err(TemplateError::Syntax(_))));
        assert!(
            matches!(
                validate(
                    "{{ code }}{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
                ),
                Err(TemplateError::Syntax(_))
            ),
            "bounded work"
        );
    }

    #[test]
    fn a_text_used_again_renders_with_its_own_values() {
        let body = "{{ code }} for {{ brand }} ({{ minutes }} min)";
        let first = render(body, &Vars { code: "111111", brand: Some("Acme"), minutes: 5 }).unwrap();
        let again = render(body, &Vars { code: "222222", brand: None, minutes: 10 }).unwrap();
        assert_eq!((first.as_str(), again.as_str()), ("111111 for Acme (5 min)", "222222 for  (10 min)"));
        for _ in 0..2 {
            assert!(
                matches!(render("{{ code }} {{ nope }}", &Vars { code: "1", brand: None, minutes: 1 }), Err(TemplateError::Syntax(m)) if !m.contains("nope }}"))
            );
        }
    }

    #[test]
    fn locales() {
        assert!(valid_locale("en") && valid_locale("pt-BR") && valid_locale("zh_Hant"));
        assert!(
            !valid_locale("EN") && !valid_locale("english") && !valid_locale("e") && !valid_locale("en-")
        );
    }
}
