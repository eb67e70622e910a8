//! One client connection: WebSocket, Noise handshake, then a loop that
//! decrypts incoming stanzas for the router and encrypts outgoing ones.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{WebSocketStream, accept_async};
use wacore_binary::Node;
use wacore_noise::framing::FrameDecoder;

use crate::hub::Hub;
use crate::noise::{self, Established, HelloReply, NoiseTransport};
use crate::state::Outbound;
use crate::{router, session};

type Socket = WebSocketStream<TcpStream>;

/// Serves one accepted TCP connection until either side closes it.
pub(crate) async fn serve(hub: Arc<Hub>, stream: TcpStream) {
    let Ok(mut socket) = accept_async(stream).await else {
        return;
    };
    let mut decoder = FrameDecoder::new();
    let established = match handshake(&hub, &mut socket, &mut decoder).await {
        Ok(established) => established,
        Err(error) => {
            tracing::debug!("wamock: handshake failed: {error}");
            return;
        }
    };
    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let connection = hub.register_connection(outbound_tx);
    let Established { transport, client_static, client_payload, pattern } = established;
    tracing::debug!("wamock: connection {connection} established ({pattern:?})");
    session::open(&hub, connection, client_static, &client_payload);
    run(&hub, connection, socket, decoder, transport, outbound_rx).await;
    hub.unregister_connection(connection);
}

async fn handshake(
    hub: &Hub,
    socket: &mut Socket,
    decoder: &mut FrameDecoder,
) -> Result<Established, String> {
    let first = next_binary(socket).await.ok_or("closed before hello")?;
    decoder.feed(noise::strip_preamble(&first).map_err(|e| e.to_string())?);
    let hello = next_frame(socket, decoder).await.ok_or("no ClientHello")?;
    hub.handshake_turn().await;
    let (server_hello, reply) = noise::answer_client_hello(&hub.server, &hello).map_err(|e| e.to_string())?;
    socket.send(WsMessage::binary(noise::frame(&server_hello))).await.map_err(|e| e.to_string())?;
    match reply {
        HelloReply::Done(established) => Ok(established),
        HelloReply::AwaitFinish(pending) => {
            let finish = next_frame(socket, decoder).await.ok_or("no ClientFinish")?;
            pending.finish(&finish).map_err(|e| e.to_string())
        }
    }
}

/// The next binary WebSocket message (other kinds are skipped).
async fn next_binary(socket: &mut Socket) -> Option<Vec<u8>> {
    while let Some(message) = socket.next().await {
        match message.ok()? {
            WsMessage::Binary(data) => return Some(data.to_vec()),
            WsMessage::Close(_) => return None,
            _ => continue,
        }
    }
    None
}

/// The next complete frame, reading more messages as needed.
async fn next_frame(socket: &mut Socket, decoder: &mut FrameDecoder) -> Option<Vec<u8>> {
    loop {
        if let Some(frame) = decoder.decode_frame() {
            return Some(frame.to_vec());
        }
        decoder.feed(&next_binary(socket).await?);
    }
}

async fn run(
    hub: &Arc<Hub>,
    connection: u64,
    socket: Socket,
    mut decoder: FrameDecoder,
    mut transport: NoiseTransport,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
) {
    let (mut sink, source) = socket.split();
    // Read apart from handling: a client that closes is seen to close at once, however many
    // of the stanzas it sent before are still waiting to be handled.
    let (incoming_tx, mut incoming) = mpsc::unbounded_channel();
    // Dropped (and so the reader stopped) when this loop ends.
    let mut reader = tokio::task::JoinSet::new();
    reader.spawn(read_until_closed(hub.clone(), connection, source, incoming_tx));
    loop {
        tokio::select! {
            data = incoming.recv() => {
                let Some(data) = data else { return };
                decoder.feed(&data);
                while let Some(frame) = decoder.decode_frame() {
                    let Some(node) = open_node(&mut transport, &frame) else {
                        return;
                    };
                    router::dispatch(hub, connection, node).await;
                }
            }
            command = outbound.recv() => {
                let Some(Outbound::Node(node)) = command else {
                    return;
                };
                let Some(body) = seal_node(&mut transport, &node) else {
                    return;
                };
                if sink.send(WsMessage::binary(noise::frame(&body))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Hands the client's binary messages on until it closes the socket, then notes the close.
async fn read_until_closed(
    hub: Arc<Hub>,
    connection: u64,
    mut source: futures_util::stream::SplitStream<Socket>,
    incoming: mpsc::UnboundedSender<Vec<u8>>,
) {
    loop {
        match source.next().await {
            Some(Ok(WsMessage::Binary(data))) => {
                if incoming.send(data.to_vec()).is_err() {
                    return;
                }
            }
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        }
    }
    hub.closed_by_client(connection);
}

fn open_node(transport: &mut NoiseTransport, frame: &[u8]) -> Option<Node> {
    let plaintext = transport.open(frame).ok()?;
    let unpacked = wacore_binary::util::unpack(&plaintext).ok()?;
    let node = wacore_binary::marshal::unmarshal_ref(&unpacked).ok()?;
    Some(node.to_owned())
}

fn seal_node(transport: &mut NoiseTransport, node: &Node) -> Option<Vec<u8>> {
    let plaintext = wacore_binary::marshal(node).ok()?;
    transport.seal(&plaintext).ok()
}
