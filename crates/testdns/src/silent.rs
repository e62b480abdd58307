//! Names the server reads queries for and never answers, so a resolver asking for them
//! runs into its timeout, as it would with a dead or filtered nameserver.

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType};
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use crate::tree::ZoneTree;

pub(crate) struct SilentNames {
    zones: ZoneTree,
    silent: Vec<LowerName>,
}

impl SilentNames {
    pub(crate) fn new(zones: ZoneTree, silent: Vec<Name>) -> Self {
        Self {
            zones,
            silent: silent.into_iter().map(LowerName::from).collect(),
        }
    }

    fn is_silent(&self, request: &Request) -> bool {
        request.queries.queries().iter().any(|query| {
            self.silent
                .iter()
                .any(|silent| silent.zone_of(query.name()))
        })
    }
}

#[async_trait::async_trait]
impl RequestHandler for SilentNames {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if self.is_silent(request) {
            // Nothing is sent: the response handle is dropped unused.
            let mut metadata = request.metadata;
            metadata.message_type = MessageType::Response;
            return ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            });
        }
        self.zones
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}
