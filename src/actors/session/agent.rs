//! The session's agent: the runner its provider gave it (held here, so it lives and dies with the
//! session; providers/turns.rs), and what reaches it through the session: whether it takes a follow-up,
//! the follow-up, the stop, its stderr lines. A session read back from storage holds no runner until it is
//! asked something; its provider's `unknown` runner then answers (nothing to stop, and a follow-up refused
//! by a provider that does not know the session).

use actix::prelude::*;
use futures_util::future::BoxFuture;

use super::SessionActor;
use crate::messages::session::{AgentStderr, SetRunner, ToAgent};
use crate::providers::{ProviderError, Runner, SessionStderr};

fn ask(msg: ToAgent, runner: &dyn Runner) -> BoxFuture<'static, Result<(), ProviderError>> {
    match msg {
        ToAgent::CanPrompt => runner.accepts_prompt(),
        ToAgent::Prompt(prompt) => runner.prompt(prompt),
        ToAgent::Stop => runner.stop(),
    }
}

impl SessionActor {
    /// The session is going away: an agent it still runs must not outlive it (a purge), and what its
    /// agent wrote to stderr is kept for a while.
    pub(super) fn let_agent_go(&mut self) {
        let Some(runner) = self.runner.take() else {
            return;
        };
        let running = !self.record().status.is_finished();
        let kept = self.links.stderr_kept.clone();
        // The runner lives on until it has answered: its stderr stays readable (actors/stderr_kept.rs).
        actix::spawn(async move {
            if running {
                let _ = runner.stop().await;
            }
            if let Some(stderr) = runner.stderr().await {
                kept.keep(stderr);
            }
        });
    }
}

impl Handler<SetRunner> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: SetRunner, _: &mut Context<Self>) {
        if !(msg.keep && self.runner.is_some()) {
            self.runner = Some(msg.runner);
        }
        // A runner that keeps something (a process, a conversation) keeps the actor until its project lets
        // go of it; one that keeps nothing lets it stop once finished and stored.
        self.state.let_go_when_finished = self.runner.as_ref().is_none_or(|r| r.keeps_nothing());
    }
}

impl Handler<ToAgent> for SessionActor {
    type Result = ResponseFuture<Result<(), ProviderError>>;

    fn handle(&mut self, msg: ToAgent, _: &mut Context<Self>) -> Self::Result {
        if matches!(msg, ToAgent::CanPrompt) {
            // A prompt follows the answer: the session waits for it rather than letting go meanwhile.
            self.state.held = true;
        }
        if let Some(runner) = &self.runner {
            return ask(msg, runner.as_ref());
        }
        // Not started (nor taken back) in this process: its provider answers for a session it does not
        // know, without the session keeping that answer as its runner.
        let record = self.record();
        match self.links.providers.get(&record.provider) {
            Some(provider) => ask(msg, provider.unknown(&record.session_id).as_ref()),
            None => {
                let why = format!("provider {} is not configured", record.provider);
                Box::pin(async move { Err(why) })
            }
        }
    }
}

impl Handler<AgentStderr> for SessionActor {
    type Result = ResponseFuture<Option<SessionStderr>>;

    fn handle(&mut self, _: AgentStderr, _: &mut Context<Self>) -> Self::Result {
        match &self.runner {
            Some(runner) => runner.stderr(),
            None => Box::pin(async { None }),
        }
    }
}
