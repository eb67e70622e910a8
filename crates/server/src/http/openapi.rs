//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::schemas::{AccountViewSchema, StreamEventSchema};
use super::{
    analytics, api_keys, auth, chats, cluster, compat, compat_messages, compat_otp, health, messages,
    metrics, numbers, otp, sessions, streams, users, webhooks,
};
use crate::error::Problem;

#[cfg(feature = "sandbox")]
#[derive(OpenApi)]
#[openapi(
    paths(
        super::sandbox::scan,
        super::sandbox::confirm_pair_code,
        super::sandbox::inbound,
        super::sandbox::inbox,
        super::sandbox::create_group,
        super::sandbox::unlink,
        super::sandbox::ban
    ),
    components(schemas(
        super::sandbox::ScanRequest,
        super::sandbox::ConfirmPairCodeRequest,
        super::sandbox::InboundRequest,
        super::sandbox::InjectedMessage,
        super::sandbox::Inbox,
        super::sandbox::BanRequest
    ))
)]
struct SandboxDoc;

#[derive(OpenApi)]
#[openapi(
    info(title = "wagate API", description = "Self-hosted WhatsApp gateway: link sessions by QR or pairing code, \
        stream their state, send every kind of message, run OTP verification and receive signed webhooks.\n\n\
        Errors are `application/problem+json` with a stable `code`. Authenticate with `Authorization: Bearer <token>` \
        from `POST /api/v1/auth/login`, or with an API key (`X-API-Key` or `Authorization: Bearer wag_…`)."),
    paths(
        auth::login, auth::me,
        users::list, users::create, users::update,
        api_keys::create, api_keys::list, api_keys::revoke,
        sessions::create, sessions::list, sessions::show, sessions::update, sessions::remove,
        sessions::connect, sessions::disconnect, sessions::restart, sessions::logout, sessions::pair_code,
        sessions::activity,
        messages::send_from_session, messages::send, messages::show, messages::list, messages::retry, messages::cancel, chats::messages,
        numbers::check_numbers, numbers::groups, numbers::format_phone,
        otp::send, otp::verify, otp::show, otp::list, otp::resend, otp::cancel, otp::generate,
        otp::settings, otp::update_settings, otp::list_templates, otp::put_template, otp::delete_template,
        otp::phone_failures, otp::reset_phone_failures,
        webhooks::create, webhooks::list, webhooks::show, webhooks::update, webhooks::remove, webhooks::deliveries, webhooks::replay,
        streams::qr, streams::qr_png, streams::qr_page, streams::events, streams::websocket, streams::stream_token,
        health::health, health::ready, health::seed_health, metrics::metrics, cluster::show,
        analytics::dashboard, analytics::session_stats, analytics::activity_log, analytics::error_log,
        analytics::otp_log, analytics::cleanup,
        analytics::seed_dashboard, analytics::seed_session_stats, analytics::seed_activity_log,
        analytics::seed_error_log, analytics::seed_otp_log, analytics::seed_cleanup,
        compat::login, compat::list, compat::create, compat::create_and_connect, compat::show, compat::remove,
        compat::status, compat::qr, compat::qr_page, compat::restart, compat::rename, compat::set_webhook,
        compat::connect, compat::disconnect, compat::websocket,
        compat_messages::text, compat_messages::location, compat_messages::button, compat_messages::list,
        compat_messages::image, compat_messages::video, compat_messages::audio, compat_messages::document,
        compat_messages::format_phone, compat_messages::send_from_session, compat_messages::send_from_phone,
        compat_messages::check_number, compat_messages::groups,
        compat_otp::send, compat_otp::generate, compat_otp::verify, compat_otp::status, compat_otp::resend,
        compat_otp::expire,
    ),
    components(schemas(Problem, AccountViewSchema, StreamEventSchema)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Log in and inspect credentials"),
        (name = "sessions", description = "WhatsApp accounts linked to this server"),
        (name = "analytics", description = "Figures, the activity, OTP and error logs (JSON or CSV), cleanup"),
        (name = "linking", description = "QR codes, pairing, live session events"),
        (name = "messages", description = "Send messages and follow their delivery"),
        (name = "otp", description = "One-time passwords over WhatsApp: send, verify, resend, cancel, log"),
        (name = "numbers", description = "Number checks, groups, phone formatting"),
        (name = "webhooks", description = "Signed event delivery (Standard Webhooks)"),
        (name = "sandbox", description = "Test actions on the simulated network"),
        (name = "api keys", description = "Scoped keys for programs"),
        (name = "users", description = "Accounts of this server (admin)"),
        (name = "health", description = "Liveness and readiness"),
        (name = "compat", description = "Routes of the gateways wagate replaces, in their original shapes (docs/compat.md)"),
    )
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The whole document, including the sandbox routes when this build has them.
    pub fn document() -> utoipa::openapi::OpenApi {
        #[allow(unused_mut)]
        let mut doc = <ApiDoc as OpenApi>::openapi();
        #[cfg(feature = "sandbox")]
        doc.merge(SandboxDoc::openapi());
        ProblemResponses.modify(&mut doc);
        EventStreams.modify(&mut doc);
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc
    }
}

/// Every operation can answer with these problems (a malformed body, missing credentials, …);
/// each is documented as `application/problem+json` with the `Problem` schema, and error
/// responses an operation documents itself get that content type too.
struct ProblemResponses;

const PROBLEMS: [(&str, &str); 11] = [
    ("400", "Malformed request (JSON, query, path or header)"),
    ("401", "Missing or invalid credentials"),
    ("403", "The credential lacks a scope this operation needs"),
    ("404", "Not found, or not visible to this caller"),
    ("408", "The request body did not arrive in time (`body_timeout`)"),
    ("409", "Conflicts with the current state of the resource"),
    ("413", "Body too large"),
    ("415", "Unsupported content type"),
    ("422", "A field has an invalid value"),
    ("429", "Rate limited (see Retry-After)"),
    ("503", "Cannot be served now: the database, the WhatsApp engine or a stopping server (see Retry-After)"),
];

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        const PROBLEM_JSON: &str = "application/problem+json";
        let problem = || ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
        for item in openapi.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else { continue };
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let documented = response.content.shift_remove("application/json");
                    response
                        .content
                        .entry(PROBLEM_JSON.to_owned())
                        .or_insert_with(|| documented.unwrap_or_else(problem));
                }
                for (status, description) in PROBLEMS {
                    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content(PROBLEM_JSON, problem())
                                .build(),
                        )
                    });
                }
            }
        }
    }
}

/// A `text/event-stream` answer is described frame by frame, as OpenAPI tools read it: each
/// frame has an `event` name and `data`, the JSON text of one `StreamEvent`.
struct EventStreams;

impl Modify for EventStreams {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let frame = || {
            let data = ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("One event as JSON text (the StreamEvent schema)"));
            let frame = ObjectBuilder::new()
                .property("event", ObjectBuilder::new().schema_type(Type::String))
                .property("data", data)
                .required("data")
                .build();
            RefOr::T(Schema::Object(frame))
        };
        for item in openapi.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response
                        && let Some(content) = response.content.get_mut("text/event-stream")
                    {
                        content.schema = Some(frame());
                    }
                }
            }
        }
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key")
                    .description(Some("A login token from POST /api/v1/auth/login, or an API key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "query_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A login token or a stream token (POST …/stream-token); never an API key",
            ))),
        );
    }
}
