use std::error::Error;

use actix::prelude::*;
use projects_pubsub::{
    Delivery, EventName, Mutation, MutationError, ProjectPayload, ProjectsNotifier, Subscribe,
    Topic, TopicBroker,
};
use uuid::Uuid;

/// A live view of the workspace overview.
struct Overview;

impl Actor for Overview {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Overview {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        println!("{}: {}", delivery.topic(), delivery.event().to_json());
        System::current().stop();
    }
}

/// What a request handler does once its transaction has committed.
fn create_project(notifier: &Addr<ProjectsNotifier>, name: &str) -> Result<(), MutationError> {
    let project = ProjectPayload::new(Uuid::new_v4(), name, false);
    notifier.do_send(Mutation::project(EventName::ProjectCreated, project)?);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let system = System::new();

    // The broker holds subscribers weakly: keep the view's address.
    let _overview = system.block_on(async {
        let overview = Overview.start();
        let subscribe = Subscribe::new(Topic::all(), overview.clone().recipient());
        TopicBroker::from_registry().send(subscribe).await??;

        create_project(&ProjectsNotifier::from_registry(), "Kitchen refit")?;
        Ok::<_, Box<dyn Error>>(overview)
    })?;

    system.run()?;
    Ok(())
}
