//! The shape of an actix-web application that announces its changes: the
//! notifier is shared with every worker as `web::Data`, and a handler tells
//! it about a change once the change is committed.
//!
//! ```sh
//! cargo run --example web_handler --features web
//! curl -X POST http://127.0.0.1:8081/tasks/Sand%20the%20floor
//! ```

use actix::prelude::*;
use actix_web::{App, HttpResponse, HttpServer, post, web};
use projects_pubsub::{
    Delivery, EventName, Mutation, ProjectsNotifier, Subscribe, TaskPayload, Topic, TopicBroker,
};
use uuid::Uuid;

/// A view of the task library; in a real application, a browser stream or
/// a cache that reloads.
struct TaskLibrary;

impl Actor for TaskLibrary {
    type Context = Context<Self>;
}

impl Handler<Delivery> for TaskLibrary {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        println!(
            "task library heard {} on {}",
            delivery.event().name,
            delivery.topic()
        );
    }
}

#[post("/tasks/{title}")]
async fn create_task(
    notifier: web::Data<Addr<ProjectsNotifier>>,
    title: web::Path<String>,
) -> actix_web::Result<HttpResponse> {
    let task = TaskPayload::new(Uuid::new_v4(), title.into_inner());
    // ... insert the task and commit the transaction here, then:
    let mutation = Mutation::task(EventName::TaskCreated, task.clone())
        .map_err(actix_web::error::ErrorInternalServerError)?;
    notifier.do_send(mutation);
    Ok(HttpResponse::Created().json(task))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let notifier = ProjectsNotifier::from_registry();

    // Keep the view's address for as long as it should hear events.
    let library = TaskLibrary.start();
    let subscribe = Subscribe::new(Topic::tasks(), library.clone().recipient());
    TopicBroker::from_registry()
        .send(subscribe)
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;

    let port = std::env::var("PORT").unwrap_or_else(|_| "8081".into());
    println!("listening on http://127.0.0.1:{port}");
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(notifier.clone()))
            .service(create_task)
    })
    .bind(("127.0.0.1", port.parse().unwrap_or(8081)))?
    .run()
    .await
}
