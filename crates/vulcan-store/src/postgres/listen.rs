//! Receiving the cluster's signals: a connection of its own that LISTENs on the channel,
//! reconnected whenever it breaks (with [`Signal::Resync`] after each reconnection, since
//! signals sent meanwhile were missed).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use vulcan_domain::Signal;

use super::{PgStore, CHANNEL};

impl PgStore {
    /// The signals of every node (this one's too), for as long as the receiver is kept.
    pub fn listen(&self) -> mpsc::UnboundedReceiver<Signal> {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = self.inner.config.clone();
        tokio::spawn(async move {
            let mut first = true;
            while !tx.is_closed() {
                match listen_once(&config, &tx, first).await {
                    Ok(()) => tracing::warn!("the signal connection closed; reconnecting"),
                    Err(e) => {
                        tracing::warn!(error = %e, "the signal connection failed; reconnecting")
                    }
                }
                first = false;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        rx
    }
}

/// One connection's life: LISTEN, then forward notifications until it breaks.
async fn listen_once(
    config: &tokio_postgres::Config,
    tx: &mpsc::UnboundedSender<Signal>,
    first: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notes_tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if !first {
        let _ = tx.send(Signal::Resync);
    }
    while let Some(payload) = notes.recv().await {
        if let Some(signal) = Signal::decode(&payload) {
            if tx.send(signal).is_err() {
                break;
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
