//! Signals between the nodes sharing one database: `NOTIFY` to send,
//! a dedicated `LISTEN` connection to hear. Notifications are hints that
//! make a node act at once (a task is due, a task must stop, the registry
//! changed); every node also polls, so a lost notification delays work but
//! never loses it.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::super::Result;
use super::{PgStore, config_of};

/// Tasks became due (payload empty).
pub const TASKS_CHANNEL: &str = "wasmfc_tasks";
/// A task is to stop (payload: its seq).
pub const STOP_CHANNEL: &str = "wasmfc_stop";
/// The registry changed (sent by the transaction that changed it).
pub const REGISTRY_CHANNEL: &str = "wasmfc_registry";

/// A notification: its channel and payload.
pub type Notification = (String, String);

impl PgStore {
    /// Sends `payload` on `channel` to every listening node (this one too).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        self.client()
            .await?
            .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
            .await?;
        Ok(())
    }

    /// Opens a connection that listens on `channels`. What it hears comes
    /// out of the receiver, which closes when the connection is lost; the
    /// returned client keeps the connection open while it is held.
    pub async fn listen(
        &self,
        channels: &[&str],
    ) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<Notification>)> {
        let (client, mut connection) = config_of(self.url())?.connect(tokio_postgres::NoTls).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        // The connection is driven here, so the client can issue LISTEN.
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send((n.channel().to_string(), n.payload().to_string())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the LISTEN connection to PostgreSQL closed");
                        return;
                    }
                }
            }
        });
        let listen: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
        client.batch_execute(&listen).await?;
        Ok((client, rx))
    }
}
