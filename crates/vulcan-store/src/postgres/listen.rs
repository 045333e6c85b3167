//! Receiving the cluster's signals: a connection of its own that LISTENs on the channel,
//! reconnected whenever it breaks (with [`Signal::Resync`] after each reconnection, since
//! signals sent meanwhile were missed).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use vulcan_domain::{Deliver, Signal};

use super::{PgStore, CHANNEL};

impl PgStore {
    /// Hands the signals of every node (this one's too) to `deliver`, until it returns
    /// false: a connection of its own, reconnected whenever it breaks.
    pub(super) fn listen(&self, deliver: Deliver) {
        let config = self.inner.config.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                match listen_once(&config, &deliver, first).await {
                    Ok(true) => tracing::warn!("the signal connection closed; reconnecting"),
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "the signal connection failed; reconnecting")
                    }
                }
                first = false;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
}

/// One connection's life: LISTEN, then deliver notifications until it breaks (`Ok(true)`:
/// connect again) or nobody wants them any more (`Ok(false)`).
async fn listen_once(
    config: &tokio_postgres::Config,
    deliver: &Deliver,
    first: bool,
) -> Result<bool, tokio_postgres::Error> {
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
    if !first && !deliver(Signal::Resync) {
        return Ok(false);
    }
    while let Some(payload) = notes.recv().await {
        if let Some(signal) = Signal::decode(&payload) {
            if !deliver(signal) {
                return Ok(false);
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result.map(|()| true),
        Err(_) => Ok(true),
    }
}
