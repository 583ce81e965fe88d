//! A small builder of ONNX graphs: named values, constant weights, single-output nodes, and the
//! model file around them.

use std::collections::HashSet;

use candle_core::{DType, Result, Tensor};
use prost::Message;

use super::proto::{
    attribute_type, data_type, AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto,
};

/// The ONNX operator set the exported graphs use (`LayerNormalization`, `HardSwish` and
/// `Shape`'s `start`/`end` are all there).
pub const OPSET: i64 = 17;
/// The IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;

/// A tensor of the graph being built, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value(String);

impl Value {
    /// Its name in the graph.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// One axis of a graph input or output: fixed, or symbolic with a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A size chosen at run time (`"batch"`, `"height"`).
    Named(String),
}

/// A node attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// An integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A float.
    Float(f32),
    /// A string.
    Str(String),
}

/// A graph under construction: nodes are appended in execution order, so the result is
/// topologically sorted by construction.
#[derive(Debug, Default)]
pub struct OnnxGraph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    names: HashSet<String>,
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => DimensionValue::DimValue(*n as i64),
                Dim::Named(s) => DimensionValue::DimParam(s.clone()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

impl OnnxGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// `base`, or `base_2`, `base_3`… : a name not used yet.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut k = 1;
        while self.names.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.names.insert(name.clone());
        name
    }

    /// A float32 graph input of shape `dims`.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> Value {
        let name = self.fresh(name);
        self.inputs.push(value_info(&name, dims));
        Value(name)
    }

    /// Declares `v` a float32 graph output called `name`, of shape `dims`.
    pub fn output(&mut self, v: &Value, name: &str, dims: &[Dim]) {
        let out = self.fresh(name);
        self.nodes.push(NodeProto {
            input: vec![v.0.clone()],
            output: vec![out.clone()],
            name: format!("{out}/Identity"),
            op_type: "Identity".into(),
            ..Default::default()
        });
        self.outputs.push(value_info(&out, dims));
    }

    /// A float32 constant (a weight) with the values of `t`, named after `name`.
    pub fn constant(&mut self, name: &str, t: &Tensor) -> Result<Value> {
        let values = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let name = self.fresh(name);
        self.initializers.push(TensorProto {
            dims: t.dims().iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.clone(),
            raw_data: raw,
        });
        Ok(Value(name))
    }

    /// A 1-D int64 constant (shapes, axes, slice bounds).
    pub fn constant_i64(&mut self, name: &str, values: &[i64]) -> Value {
        let name = self.fresh(name);
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        Value(name)
    }

    /// Appends node `op` on `inputs` (`None`: an omitted optional input) with `attrs`; its one
    /// output is named after `name`.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[Option<&Value>],
        attrs: &[(&str, Attr)],
    ) -> Value {
        let out = self.fresh(name);
        let attribute = attrs
            .iter()
            .map(|(k, a)| {
                let mut p = AttributeProto {
                    name: (*k).to_owned(),
                    ..Default::default()
                };
                match a {
                    Attr::Int(i) => (p.r#type, p.i) = (attribute_type::INT, *i),
                    Attr::Ints(v) => (p.r#type, p.ints) = (attribute_type::INTS, v.clone()),
                    Attr::Float(f) => (p.r#type, p.f) = (attribute_type::FLOAT, *f),
                    Attr::Str(s) => (p.r#type, p.s) = (attribute_type::STRING, s.clone().into()),
                }
                p
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs
                .iter()
                .map(|v| v.map(|v| v.0.clone()).unwrap_or_default())
                .collect(),
            output: vec![out.clone()],
            name: format!("{out}/{op}"),
            op_type: op.to_owned(),
            attribute,
            ..Default::default()
        });
        Value(out)
    }

    /// Appends node `op` on all-present `inputs` without attributes.
    pub fn op(&mut self, op: &str, name: &str, inputs: &[&Value]) -> Value {
        let inputs: Vec<Option<&Value>> = inputs.iter().map(|v| Some(*v)).collect();
        self.node(op, name, &inputs, &[])
    }

    /// The model: this graph under opset [`OPSET`], with a description and metadata entries
    /// (shown by viewers such as Netron, readable from ONNX Runtime's `modelmeta`).
    pub fn into_model(
        self,
        graph_name: &str,
        doc: &str,
        metadata: &[(&str, String)],
    ) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "scfnet-rs".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.to_owned(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: graph_name.to_owned(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: (*k).to_owned(),
                    value: v.clone(),
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// The bytes of an ONNX file holding `model`.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Reads an ONNX file's bytes back (tests, inspection).
pub fn decode_model(bytes: &[u8]) -> std::result::Result<ModelProto, prost::DecodeError> {
    ModelProto::decode(bytes)
}
