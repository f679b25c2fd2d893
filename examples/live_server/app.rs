//! The live demo's server: a projects workspace in SQLite behind JSON
//! handlers, the event stream, and a page that updates live.
//!
//! Every handler that changes something commits its transaction first and
//! only then tells the notifier, so a rolled-back change never reaches a
//! page. Shared by `examples/live_server.rs` and `tests/web_browser.rs`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use projects_pubsub::web::{Denied, EventStream, StreamLimits};
use projects_pubsub::{
    AssignmentPayload, DependencyPayload, EventName, Mutation, MutationError, ProjectPayload,
    ProjectRef, ProjectsNotifier, TaskPayload, Topic, TopicBroker, TopicKind,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

const SCHEMA: &str = "
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS projects (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    is_template INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    uuid TEXT PRIMARY KEY,
    title TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    uuid TEXT PRIMARY KEY,
    project_uuid TEXT NOT NULL REFERENCES projects(uuid) ON DELETE CASCADE,
    task_uuid TEXT NOT NULL REFERENCES tasks(uuid),
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dependencies (
    assignment_uuid TEXT NOT NULL REFERENCES assignments(uuid) ON DELETE CASCADE,
    depends_on_uuid TEXT NOT NULL REFERENCES assignments(uuid) ON DELETE CASCADE,
    project_uuid TEXT NOT NULL,
    PRIMARY KEY (assignment_uuid, depends_on_uuid)
);
";

/// The running demo.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server; await it to serve until it stops.
    pub server: actix_web::dev::Server,
}

/// Opens the workspace database (in memory without a path), creates its
/// tables, and adds a small sample workspace when it is empty.
pub fn open_database(path: Option<&Path>) -> rusqlite::Result<Connection> {
    let db = match path {
        Some(path) => Connection::open(path)?,
        None => Connection::open_in_memory()?,
    };
    db.execute_batch(SCHEMA)?;
    let empty: bool = db.query_row("SELECT COUNT(*) = 0 FROM projects", [], |row| row.get(0))?;
    if empty {
        seed(&db)?;
    }
    Ok(db)
}

fn seed(db: &Connection) -> rusqlite::Result<()> {
    let tasks: Vec<(Uuid, &str)> = [
        "Measure the room",
        "Order materials",
        "Strip old units",
        "Fit new cabinets",
        "Paint the walls",
    ]
    .into_iter()
    .map(|title| (Uuid::new_v4(), title))
    .collect();
    for (uuid, title) in &tasks {
        db.execute(
            "INSERT INTO tasks (uuid, title) VALUES (?1, ?2)",
            params![uuid.to_string(), title],
        )?;
    }

    let projects = [
        ("Kitchen refit (template)", true, &tasks[..4]),
        ("Kitchen refit, 12 Baker Street", false, &tasks[..]),
        ("Garden shed", false, &tasks[..2]),
    ];
    for (name, is_template, assigned) in projects {
        let project = Uuid::new_v4();
        db.execute(
            "INSERT INTO projects (uuid, name, is_template) VALUES (?1, ?2, ?3)",
            params![project.to_string(), name, is_template],
        )?;
        for (position, (task, _)) in assigned.iter().enumerate() {
            db.execute(
                "INSERT INTO assignments (uuid, project_uuid, task_uuid, position)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    Uuid::new_v4().to_string(),
                    project.to_string(),
                    task.to_string(),
                    position as i64
                ],
            )?;
        }
    }
    Ok(())
}

/// Serves the demo on `listener`, with its own broker and notifier.
///
/// Call it inside a running actix system.
pub fn serve(listener: TcpListener, db: Connection) -> io::Result<Running> {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let stream = EventStream::new(broker, StreamLimits::default(), authorize);
    let demo = web::Data::new(Demo {
        db: Arc::new(Mutex::new(db)),
        notifier,
        stream: stream.clone(),
    });

    let endpoint = stream;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(demo.clone())
            .app_data(web::JsonConfig::default().limit(16 * 1024))
            .service(endpoint.service("/events"))
            .configure(routes)
    })
    .workers(2)
    // Open event streams never finish on their own: stop without waiting
    // the default 30 seconds for them.
    .shutdown_timeout(1)
    .listen(listener)?;
    let addr = server.addrs()[0];
    Ok(Running {
        addr,
        server: server.run(),
    })
}

/// The demo streams the workspace's own topics to anyone, and nothing else:
/// a real application would check the signed-in user here.
fn authorize(_: &HttpRequest, topic: &Topic) -> Result<(), Denied> {
    match (topic.org(), topic.kind()) {
        (None, TopicKind::Embed(_)) => Err(Denied::new("this demo streams no embed topics")),
        (Some(_), _) => Err(Denied::new("this demo has no organisations")),
        _ => Ok(()),
    }
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(page))
        .route("/projects/{uuid}", web::get().to(page))
        .route("/app.js", web::get().to(script))
        .route("/style.css", web::get().to(style))
        .route("/api/workspace", web::get().to(workspace))
        .route("/api/stats", web::get().to(stats))
        .route("/api/projects", web::post().to(create_project))
        .route("/api/projects/{uuid}", web::get().to(project))
        .route("/api/projects/{uuid}", web::patch().to(update_project))
        .route("/api/projects/{uuid}", web::delete().to(delete_project))
        .route("/api/tasks", web::post().to(create_task))
        .route("/api/tasks/{uuid}", web::patch().to(update_task))
        .route("/api/tasks/{uuid}", web::delete().to(delete_task))
        .route(
            "/api/projects/{uuid}/assignments",
            web::post().to(create_assignment),
        )
        .route(
            "/api/projects/{uuid}/assignments/order",
            web::put().to(reorder_assignments),
        )
        .route(
            "/api/projects/{uuid}/assignments/{assignment}",
            web::delete().to(delete_assignment),
        )
        .route(
            "/api/projects/{uuid}/dependencies",
            web::post().to(add_dependency),
        )
        .route(
            "/api/projects/{uuid}/dependencies/{assignment}/{depends_on}",
            web::delete().to(remove_dependency),
        );
}

struct Demo {
    db: Arc<Mutex<Connection>>,
    notifier: Addr<ProjectsNotifier>,
    stream: EventStream,
}

impl Demo {
    /// Runs `change` in one transaction on a blocking thread and commits it.
    async fn write<T, F>(&self, change: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        web::block(move || {
            let mut db = db.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = db.transaction()?;
            let value = change(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
    }

    async fn read<T, F>(&self, query: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        web::block(move || query(&db.lock().unwrap_or_else(PoisonError::into_inner)))
            .await
            .map_err(|err| ApiError::internal(err.to_string()))?
    }

    /// Tells the notifier about a committed change; nothing to await.
    fn announce(&self, mutation: Result<Mutation, MutationError>) {
        match mutation {
            Ok(mutation) => self.notifier.do_send(mutation),
            Err(err) => log::warn!("a committed change was not announced: {err}"),
        }
    }
}

/// An answer other than success: a status and a message, as JSON.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("no such {what}"))
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn internal(message: String) -> ApiError {
        log::error!("demo store failed: {message}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the store failed")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({ "error": self.message }))
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> ApiError {
        ApiError::internal(err.to_string())
    }
}

type Answer = Result<HttpResponse, ApiError>;

/// A name or title: trimmed, 1 to 200 characters.
fn text(value: &str, what: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 200 {
        return Err(ApiError::invalid(format!(
            "{what} must be 1 to 200 characters"
        )));
    }
    Ok(value.to_owned())
}

fn uuid_of(text: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::invalid(format!("{what} is not a uuid")))
}

fn stored_uuid(text: String) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(err))
    })
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE_CSS)
}

#[derive(Serialize)]
struct ProjectRow {
    uuid: Uuid,
    name: String,
    is_template: bool,
    assignments: i64,
}

#[derive(Serialize)]
struct AssignmentRow {
    uuid: Uuid,
    task_uuid: Uuid,
    title: String,
    position: i64,
}

#[derive(Serialize)]
struct DependencyRow {
    assignment_uuid: Uuid,
    depends_on_uuid: Uuid,
}

async fn workspace(demo: web::Data<Demo>) -> Answer {
    let (projects, tasks) = demo
        .read(|db| {
            let mut select = db.prepare(
                "SELECT p.uuid, p.name, p.is_template,
                        (SELECT COUNT(*) FROM assignments a WHERE a.project_uuid = p.uuid)
                 FROM projects p ORDER BY p.rowid",
            )?;
            let projects = select
                .query_map([], |row| {
                    Ok(ProjectRow {
                        uuid: stored_uuid(row.get(0)?)?,
                        name: row.get(1)?,
                        is_template: row.get(2)?,
                        assignments: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut select = db.prepare("SELECT uuid, title FROM tasks ORDER BY rowid")?;
            let tasks = select
                .query_map([], |row| {
                    Ok(TaskPayload {
                        uuid: stored_uuid(row.get(0)?)?,
                        title: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((projects, tasks))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "projects": projects, "tasks": tasks })))
}

async fn stats(demo: web::Data<Demo>) -> HttpResponse {
    let stats = demo.stream.stats();
    HttpResponse::Ok().json(json!({
        "open": stats.open,
        "opened": stats.opened,
        "denied": stats.denied,
        "malformed": stats.malformed,
        "slow_disconnects": stats.slow_disconnects,
        "resumed": stats.resumed,
        "reloads": stats.reloads,
    }))
}

fn load_project(db: &Connection, uuid: Uuid) -> Result<ProjectPayload, ApiError> {
    db.query_row(
        "SELECT name, is_template FROM projects WHERE uuid = ?1",
        params![uuid.to_string()],
        |row| {
            Ok(ProjectPayload::new(
                uuid,
                row.get::<_, String>(0)?,
                row.get(1)?,
            ))
        },
    )
    .optional()?
    .ok_or_else(|| ApiError::not_found("project"))
}

async fn project(demo: web::Data<Demo>, path: web::Path<String>) -> Answer {
    let uuid = uuid_of(&path, "project")?;
    let body = demo
        .read(move |db| {
            let project = load_project(db, uuid)?;
            let mut select = db.prepare(
                "SELECT a.uuid, a.task_uuid, t.title, a.position
                 FROM assignments a JOIN tasks t ON t.uuid = a.task_uuid
                 WHERE a.project_uuid = ?1 ORDER BY a.position",
            )?;
            let assignments = select
                .query_map(params![uuid.to_string()], |row| {
                    Ok(AssignmentRow {
                        uuid: stored_uuid(row.get(0)?)?,
                        task_uuid: stored_uuid(row.get(1)?)?,
                        title: row.get(2)?,
                        position: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut select = db.prepare(
                "SELECT assignment_uuid, depends_on_uuid FROM dependencies
                 WHERE project_uuid = ?1 ORDER BY rowid",
            )?;
            let dependencies = select
                .query_map(params![uuid.to_string()], |row| {
                    Ok(DependencyRow {
                        assignment_uuid: stored_uuid(row.get(0)?)?,
                        depends_on_uuid: stored_uuid(row.get(1)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(json!({
                "project": project,
                "assignments": assignments,
                "dependencies": dependencies,
            }))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
struct NewProject {
    name: String,
    #[serde(default)]
    is_template: bool,
    /// A template whose assignments the new project starts with.
    #[serde(default)]
    template: Option<Uuid>,
}

async fn create_project(demo: web::Data<Demo>, body: web::Json<NewProject>) -> Answer {
    let project = ProjectPayload::new(Uuid::new_v4(), text(&body.name, "name")?, body.is_template);
    let template = body.template;
    let row = project.clone();
    let copied = demo
        .write(move |tx| {
            tx.execute(
                "INSERT INTO projects (uuid, name, is_template) VALUES (?1, ?2, ?3)",
                params![row.uuid.to_string(), row.name, row.is_template],
            )?;
            let Some(template) = template else {
                return Ok(Vec::new());
            };
            load_project(tx, template)?;
            let mut select = tx.prepare(
                "SELECT task_uuid, position FROM assignments
                 WHERE project_uuid = ?1 ORDER BY position",
            )?;
            let rows = select
                .query_map(params![template.to_string()], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut copied = Vec::with_capacity(rows.len());
            for (task, position) in rows {
                let uuid = Uuid::new_v4();
                tx.execute(
                    "INSERT INTO assignments (uuid, project_uuid, task_uuid, position)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![uuid.to_string(), row.uuid.to_string(), task, position],
                )?;
                copied.push(uuid);
            }
            Ok(copied)
        })
        .await?;

    // A multi-row change announces its events after the one commit.
    demo.announce(Mutation::project(
        EventName::ProjectCreated,
        project.clone(),
    ));
    for uuid in copied {
        demo.announce(Mutation::assignment(
            EventName::AssignmentCreated,
            AssignmentPayload {
                project_uuid: project.uuid,
                uuid: Some(uuid),
            },
        ));
    }
    Ok(HttpResponse::Created().json(project))
}

#[derive(Deserialize)]
struct ProjectChange {
    name: Option<String>,
    is_template: Option<bool>,
}

async fn update_project(
    demo: web::Data<Demo>,
    path: web::Path<String>,
    body: web::Json<ProjectChange>,
) -> Answer {
    let uuid = uuid_of(&path, "project")?;
    let name = body
        .name
        .as_deref()
        .map(|name| text(name, "name"))
        .transpose()?;
    let is_template = body.is_template;
    let project = demo
        .write(move |tx| {
            let mut project = load_project(tx, uuid)?;
            project.name = name.unwrap_or(project.name);
            project.is_template = is_template.unwrap_or(project.is_template);
            tx.execute(
                "UPDATE projects SET name = ?2, is_template = ?3 WHERE uuid = ?1",
                params![uuid.to_string(), project.name, project.is_template],
            )?;
            Ok(project)
        })
        .await?;
    demo.announce(Mutation::project(
        EventName::ProjectUpdated,
        project.clone(),
    ));
    Ok(HttpResponse::Ok().json(project))
}

async fn delete_project(demo: web::Data<Demo>, path: web::Path<String>) -> Answer {
    let uuid = uuid_of(&path, "project")?;
    let project = demo
        .write(move |tx| {
            let project = load_project(tx, uuid)?;
            tx.execute(
                "DELETE FROM projects WHERE uuid = ?1",
                params![uuid.to_string()],
            )?;
            Ok(project)
        })
        .await?;
    let reference = ProjectRef::new(uuid).template(project.is_template);
    demo.announce(Mutation::project_ref(EventName::ProjectDeleted, reference));
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct TaskText {
    title: String,
}

async fn create_task(demo: web::Data<Demo>, body: web::Json<TaskText>) -> Answer {
    let task = TaskPayload {
        uuid: Uuid::new_v4(),
        title: text(&body.title, "title")?,
    };
    let row = task.clone();
    demo.write(move |tx| {
        tx.execute(
            "INSERT INTO tasks (uuid, title) VALUES (?1, ?2)",
            params![row.uuid.to_string(), row.title],
        )?;
        Ok(())
    })
    .await?;
    demo.announce(Mutation::task(EventName::TaskCreated, task.clone()));
    Ok(HttpResponse::Created().json(task))
}

async fn update_task(
    demo: web::Data<Demo>,
    path: web::Path<String>,
    body: web::Json<TaskText>,
) -> Answer {
    let task = TaskPayload {
        uuid: uuid_of(&path, "task")?,
        title: text(&body.title, "title")?,
    };
    let row = task.clone();
    demo.write(move |tx| {
        let changed = tx.execute(
            "UPDATE tasks SET title = ?2 WHERE uuid = ?1",
            params![row.uuid.to_string(), row.title],
        )?;
        if changed == 0 {
            return Err(ApiError::not_found("task"));
        }
        Ok(())
    })
    .await?;
    demo.announce(Mutation::task(EventName::TaskUpdated, task.clone()));
    Ok(HttpResponse::Ok().json(task))
}

async fn delete_task(demo: web::Data<Demo>, path: web::Path<String>) -> Answer {
    let uuid = uuid_of(&path, "task")?;
    let task = demo
        .write(move |tx| {
            let title: String = tx
                .query_row(
                    "SELECT title FROM tasks WHERE uuid = ?1",
                    params![uuid.to_string()],
                    |row| row.get(0),
                )
                .optional()?
                .ok_or_else(|| ApiError::not_found("task"))?;
            let assigned: i64 = tx.query_row(
                "SELECT COUNT(*) FROM assignments WHERE task_uuid = ?1",
                params![uuid.to_string()],
                |row| row.get(0),
            )?;
            if assigned > 0 {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("the task is assigned {assigned} times: remove those first"),
                ));
            }
            tx.execute(
                "DELETE FROM tasks WHERE uuid = ?1",
                params![uuid.to_string()],
            )?;
            Ok(TaskPayload { uuid, title })
        })
        .await?;
    demo.announce(Mutation::task(EventName::TaskDeleted, task));
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct NewAssignment {
    task_uuid: Uuid,
}

async fn create_assignment(
    demo: web::Data<Demo>,
    path: web::Path<String>,
    body: web::Json<NewAssignment>,
) -> Answer {
    let project = uuid_of(&path, "project")?;
    let task = body.task_uuid;
    let uuid = Uuid::new_v4();
    demo.write(move |tx| {
        load_project(tx, project)?;
        let known: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM tasks WHERE uuid = ?1",
            params![task.to_string()],
            |row| row.get(0),
        )?;
        if !known {
            return Err(ApiError::not_found("task"));
        }
        tx.execute(
            "INSERT INTO assignments (uuid, project_uuid, task_uuid, position)
             VALUES (?1, ?2, ?3,
                     (SELECT COALESCE(MAX(position) + 1, 0) FROM assignments
                      WHERE project_uuid = ?2))",
            params![uuid.to_string(), project.to_string(), task.to_string()],
        )?;
        Ok(())
    })
    .await?;
    let payload = AssignmentPayload {
        project_uuid: project,
        uuid: Some(uuid),
    };
    demo.announce(Mutation::assignment(
        EventName::AssignmentCreated,
        payload.clone(),
    ));
    Ok(HttpResponse::Created().json(payload))
}

async fn delete_assignment(demo: web::Data<Demo>, path: web::Path<(String, String)>) -> Answer {
    let project = uuid_of(&path.0, "project")?;
    let uuid = uuid_of(&path.1, "assignment")?;
    let dropped = demo
        .write(move |tx| {
            let mut select = tx.prepare(
                "SELECT assignment_uuid, depends_on_uuid FROM dependencies
                 WHERE project_uuid = ?1 AND (assignment_uuid = ?2 OR depends_on_uuid = ?2)",
            )?;
            let dropped = select
                .query_map(params![project.to_string(), uuid.to_string()], |row| {
                    Ok((stored_uuid(row.get(0)?)?, stored_uuid(row.get(1)?)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let removed = tx.execute(
                "DELETE FROM assignments WHERE uuid = ?1 AND project_uuid = ?2",
                params![uuid.to_string(), project.to_string()],
            )?;
            if removed == 0 {
                return Err(ApiError::not_found("assignment"));
            }
            Ok(dropped)
        })
        .await?;

    for (assignment_uuid, depends_on_uuid) in dropped {
        demo.announce(Mutation::dependency(
            EventName::DependencyRemoved,
            DependencyPayload {
                assignment_uuid,
                depends_on_uuid,
                project_uuid: project,
            },
        ));
    }
    demo.announce(Mutation::assignment(
        EventName::AssignmentDeleted,
        AssignmentPayload {
            project_uuid: project,
            uuid: Some(uuid),
        },
    ));
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct Order {
    order: Vec<Uuid>,
}

async fn reorder_assignments(
    demo: web::Data<Demo>,
    path: web::Path<String>,
    body: web::Json<Order>,
) -> Answer {
    let project = uuid_of(&path, "project")?;
    let order = body.into_inner().order;
    demo.write(move |tx| {
        let mut select =
            tx.prepare("SELECT uuid FROM assignments WHERE project_uuid = ?1 ORDER BY uuid")?;
        let mut current = select
            .query_map(params![project.to_string()], |row| stored_uuid(row.get(0)?))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut wanted = order.clone();
        current.sort();
        wanted.sort();
        if current != wanted {
            return Err(ApiError::invalid(
                "order must list every assignment of the project once",
            ));
        }
        for (position, uuid) in order.iter().enumerate() {
            tx.execute(
                "UPDATE assignments SET position = ?2 WHERE uuid = ?1",
                params![uuid.to_string(), position as i64],
            )?;
        }
        Ok(())
    })
    .await?;
    demo.announce(Mutation::assignment(
        EventName::AssignmentReordered,
        AssignmentPayload {
            project_uuid: project,
            uuid: None,
        },
    ));
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct NewDependency {
    assignment_uuid: Uuid,
    depends_on_uuid: Uuid,
}

async fn add_dependency(
    demo: web::Data<Demo>,
    path: web::Path<String>,
    body: web::Json<NewDependency>,
) -> Answer {
    let payload = DependencyPayload {
        assignment_uuid: body.assignment_uuid,
        depends_on_uuid: body.depends_on_uuid,
        project_uuid: uuid_of(&path, "project")?,
    };
    if payload.assignment_uuid == payload.depends_on_uuid {
        return Err(ApiError::invalid("an assignment cannot wait for itself"));
    }
    let row = payload.clone();
    demo.write(move |tx| {
        let in_project: i64 = tx.query_row(
            "SELECT COUNT(*) FROM assignments WHERE project_uuid = ?1 AND uuid IN (?2, ?3)",
            params![
                row.project_uuid.to_string(),
                row.assignment_uuid.to_string(),
                row.depends_on_uuid.to_string()
            ],
            |r| r.get(0),
        )?;
        if in_project != 2 {
            return Err(ApiError::invalid(
                "both assignments must belong to the project",
            ));
        }
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO dependencies (assignment_uuid, depends_on_uuid, project_uuid)
             VALUES (?1, ?2, ?3)",
            params![
                row.assignment_uuid.to_string(),
                row.depends_on_uuid.to_string(),
                row.project_uuid.to_string()
            ],
        )?;
        if inserted == 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "that dependency exists already",
            ));
        }
        Ok(())
    })
    .await?;
    demo.announce(Mutation::dependency(
        EventName::DependencyAdded,
        payload.clone(),
    ));
    Ok(HttpResponse::Created().json(payload))
}

async fn remove_dependency(
    demo: web::Data<Demo>,
    path: web::Path<(String, String, String)>,
) -> Answer {
    let payload = DependencyPayload {
        project_uuid: uuid_of(&path.0, "project")?,
        assignment_uuid: uuid_of(&path.1, "assignment")?,
        depends_on_uuid: uuid_of(&path.2, "assignment")?,
    };
    let row = payload.clone();
    demo.write(move |tx| {
        let removed = tx.execute(
            "DELETE FROM dependencies
             WHERE project_uuid = ?1 AND assignment_uuid = ?2 AND depends_on_uuid = ?3",
            params![
                row.project_uuid.to_string(),
                row.assignment_uuid.to_string(),
                row.depends_on_uuid.to_string()
            ],
        )?;
        if removed == 0 {
            return Err(ApiError::not_found("dependency"));
        }
        Ok(())
    })
    .await?;
    demo.announce(Mutation::dependency(EventName::DependencyRemoved, payload));
    Ok(HttpResponse::NoContent().finish())
}
