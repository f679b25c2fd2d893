//! A projects workspace that updates live in the browser.
//!
//! ```text
//! cargo run --example live_server --features web [-- --port 8080] [--db workspace.sqlite]
//! ```
//!
//! Then open http://127.0.0.1:8080/ in two windows and change something in
//! one: the other follows without reloading. The port also comes from the
//! `PORT` environment variable, the database file from `LIVE_SERVER_DB`;
//! without one the workspace lives in memory and starts with sample data.

#[path = "live_server/app.rs"]
mod app;

use std::net::TcpListener;
use std::path::PathBuf;

const USAGE: &str = "usage: live_server [--port PORT] [--db FILE]";

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let mut port: u16 = match std::env::var("PORT") {
        Ok(text) => parse_port(&text)?,
        Err(_) => 8080,
    };
    let mut db: Option<PathBuf> = std::env::var_os("LIVE_SERVER_DB").map(PathBuf::from);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(value)) => port = parse_port(&value)?,
            ("--db", Some(value)) => db = Some(PathBuf::from(value)),
            _ => return Err(invalid(USAGE)),
        }
    }

    actix_web::rt::System::new().block_on(async move {
        let database = app::open_database(db.as_deref()).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let running = app::serve(listener, database)?;
        let store = match &db {
            Some(path) => path.display().to_string(),
            None => "memory".to_owned(),
        };
        println!(
            "live demo on http://{}/ (workspace in {store})",
            running.addr
        );
        println!("open it in two windows and change something; Ctrl-C stops it");
        running.server.await
    })
}

fn parse_port(text: &str) -> std::io::Result<u16> {
    text.parse()
        .map_err(|_| invalid(&format!("not a port: {text:?}\n{USAGE}")))
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_owned())
}
